"""A new local MLflow store is a copy of an empty one made once: each copy is a working store
of its own, and the empty one is not made again."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline.platform.mlflow_store import copy_empty_store, start_mlflow_store

pytestmark = pytest.mark.integration


def test_copies_are_working_stores_of_their_own(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    template = tmp_path / "cache" / "mlflow-test.db"
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    copy_empty_store(first, template)
    made = template.stat().st_mtime_ns
    copy_empty_store(second, template)
    assert template.stat().st_mtime_ns == made  # made once
    assert list(template.parent.iterdir()) == [template]  # no partial file left behind

    for store, name in ((first, "one"), (second, "two")):
        uri = f"sqlite:///{store}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.create_experiment(name)
        client.create_registered_model(f"model-{name}")
    client = MlflowClient(tracking_uri=f"sqlite:///{first}", registry_uri=f"sqlite:///{first}")
    assert [e.name for e in client.search_experiments()] == ["one", "Default"]
    assert [m.name for m in client.search_registered_models()] == ["model-one"]


def test_an_existing_store_or_a_configured_uri_is_left_alone(tmp_path: Path, make_settings) -> None:  # type: ignore[no-untyped-def]
    template = tmp_path / "cache" / "mlflow-test.db"
    configured = make_settings(mlflow_tracking_uri="http://127.0.0.1:1", data_dir=tmp_path / "x")
    start_mlflow_store(configured, template)
    assert not (tmp_path / "x" / "mlflow.db").exists() and not template.exists()

    settings = make_settings(mlflow_tracking_uri=None, data_dir=tmp_path / "y")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "mlflow.db").write_bytes(b"a store of its own")
    start_mlflow_store(settings, template)
    assert (tmp_path / "y" / "mlflow.db").read_bytes() == b"a store of its own"
