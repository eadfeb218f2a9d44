"""A new local MLflow store in a moment: a copy of an empty one of the same MLflow version.

A new SQLite store migrates MLflow's schema in whichever process opens it first: about 2.5 s of
CPU on a 2-core machine, at every first start of `driftline up` in a new data directory and in
every test that makes its own store. The empty store (the template) is made once per machine
and MLflow version, in the user's cache directory, and copied for each new store. It holds no
state, so sharing it between checkouts and runs is safe.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from importlib.metadata import version
from pathlib import Path

import platformdirs

from driftline.core.settings import Settings


def default_template() -> Path:
    return Path(platformdirs.user_cache_dir("driftline")) / f"mlflow-{version('mlflow')}.db"


def copy_empty_store(store: Path, template: Path | None = None) -> None:
    """Make ``store`` (a file that does not exist yet) an empty MLflow store."""
    template = template or default_template()
    if not template.exists():
        _make(template)
    store.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, store)


def start_mlflow_store(settings: Settings, template: Path | None = None) -> None:
    """The default local store (``data_dir/mlflow.db``) started from the template; a configured
    tracking URI, or a store that exists, is left alone."""
    if settings.mlflow_tracking_uri:
        return
    store = settings.data_dir / "mlflow.db"
    if not store.exists():
        copy_empty_store(store, template)


def _make(template: Path) -> None:
    from mlflow import MlflowClient

    template.parent.mkdir(parents=True, exist_ok=True)
    # Its own name: processes making the template at once (test workers) each finish theirs,
    # and the last rename wins with a store as good as the others.
    partial = template.with_name(f"{template.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    uri = f"sqlite:///{partial.resolve()}"
    # `driftline up` makes it in its own process: MLflow's schema INFO lines would land on the
    # user's terminal (mlflow sets up its own stderr handler on import).
    mlflow_log = logging.getLogger("mlflow")
    level = mlflow_log.level
    mlflow_log.setLevel(logging.WARNING)
    try:
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)
        partial.replace(template)
    finally:
        mlflow_log.setLevel(level)
        partial.unlink(missing_ok=True)
