"""Registry aliases of the served model, and the reference data each version carries."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous-champion"
REFERENCE_ARTIFACT = "reference/reference.parquet"
REFERENCE_BASELINES_ARTIFACT = "reference/baselines"  # the bundle's, for the drift service


def version_by_alias(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The version under ``alias``, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def champion_version(client: MlflowClient, model_name: str) -> str | None:
    found = version_by_alias(client, model_name, CHAMPION)
    return str(found.version) if found is not None else None


def set_champion(client: MlflowClient, model_name: str, version: str) -> str | None:
    """Make ``version`` the champion; the one it replaces stays reachable as previous-champion.

    Returns the replaced version (None if there was none, or it was this version already).
    """
    previous = champion_version(client, model_name)
    if previous is not None and previous != str(version):
        client.set_registered_model_alias(model_name, PREVIOUS_CHAMPION, previous)
    client.set_registered_model_alias(model_name, CHAMPION, str(version))
    return previous if previous != str(version) else None


def run_id_of(client: MlflowClient, model_name: str, version: str) -> str:
    run_id = client.get_model_version(model_name, str(version)).run_id
    if not run_id:
        raise LookupError(f"{model_name} version {version} has no training run")
    return str(run_id)


def download_reference(client: MlflowClient, model_name: str, version: str, dest: Path) -> Path:
    """Copy the version's reference artifact (training measurements) to ``dest``."""
    run_id = run_id_of(client, model_name, version)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        local = client.download_artifacts(run_id, REFERENCE_ARTIFACT, tmp)
        shutil.move(local, dest)
    return dest


def download_reference_baselines(
    client: MlflowClient, model_name: str, version: str, dest: Path
) -> Path | None:
    """Copy the baselines that came with the version's reference to ``dest`` (a directory,
    replaced); None for a version logged without them."""
    run_id = run_id_of(client, model_name, version)
    names = [a.path for a in client.list_artifacts(run_id, REFERENCE_BASELINES_ARTIFACT)]
    if not names:
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        local = client.download_artifacts(run_id, REFERENCE_BASELINES_ARTIFACT, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.move(local, dest)
    return dest


def load_reference_frame(client: MlflowClient, model_name: str, version: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        path = download_reference(client, model_name, version, Path(tmp) / "reference.parquet")
        return pd.read_parquet(path)
