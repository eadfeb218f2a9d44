"""The model steps against real MLflow (SQLite store), a real BentoML store and the real broker,
on SKAB valve1 data.

The data side (dataset.load_readings, datarepo.DataRepo) is replaced by small stand-ins that
honour the contract's API: these tests are about the model side. features.add_features is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sys
import time
import types
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.core.profile import load_profile
from driftline.core.records import ModelPromoted
from driftline.core.settings import DEFAULT_PROFILE, Settings
from driftline.core.topics import Topics
from driftline.drift.baselines import bundle_baselines
from driftline.platform.mlflow_store import start_mlflow_store
from driftline.store.tables import promotion_decisions
from driftline.training.features import add_features
from tests.streams import read_topic

pytestmark = pytest.mark.integration

FEATURES = load_profile(DEFAULT_PROFILE).features
RECENT_FILES = (4, 5)
UNLABELLED = 40  # rows of the recent data whose label is unknown


def skab_file(skab_dir: Path, n: int) -> pd.DataFrame:
    raw = pd.read_csv(skab_dir / "valve1" / f"{n}.csv", sep=";")
    frame = raw[FEATURES].astype("float64")
    frame.insert(0, "sensor_id", f"skab-valve1-{n}")
    frame.insert(1, "ts", pd.to_datetime(raw["datetime"], utc=True))
    frame.insert(2, "label", raw["anomaly"].astype("float64"))
    frame.insert(0, "reading_id", [uuid.uuid4().hex for _ in range(len(frame))])
    return frame


class StandInRepo:
    """The contract's DataRepo, as parquet and JSON files under resolved_data_repo."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.resolved_data_repo
        self.root.mkdir(parents=True, exist_ok=True)

    def save_dataset(self, tag: str, frame: pd.DataFrame) -> None:
        frame.to_parquet(self.root / f"{tag}.parquet", index=False)

    def load_dataset(self, tag: str) -> pd.DataFrame:
        return pd.read_parquet(self.root / f"{tag}.parquet")

    def save_params(self, tag: str, params: dict[str, Any]) -> None:
        (self.root / f"{tag}-params.json").write_text(json.dumps(params))

    def load_params(self, tag: str) -> dict[str, Any]:
        return dict(json.loads((self.root / f"{tag}-params.json").read_text()))

    def dataset_hash(self, tag: str) -> str:
        return hashlib.md5((self.root / f"{tag}.parquet").read_bytes()).hexdigest()

    def save_baselines(self, tag: str, baselines: list[Any]) -> str:
        text = json.dumps([json.loads(b.to_json()) for b in baselines])
        (self.root / f"{tag}-baselines.json").write_text(text)
        return hashlib.md5(text.encode()).hexdigest()

    def load_baselines(self, tag: str) -> list[Any] | None:
        from driftline.anomaly.baseline import SensorBaseline

        path = self.root / f"{tag}-baselines.json"
        if not path.exists():
            return None
        return [SensorBaseline.model_validate(b) for b in json.loads(path.read_text())]

    def tags(self) -> list[str]:
        return sorted(p.stem.removesuffix(".json") for p in self.root.iterdir())


def stand_in_load_readings(
    settings: Settings, start: datetime | None, end: datetime | None, sensors: list[str] | None
) -> tuple[pd.DataFrame, types.SimpleNamespace]:
    """The contract's load_readings, over a parquet file of 'raw store' readings."""
    frame = pd.read_parquet(settings.data_dir / "stand_in_raw.parquet")
    keep = pd.Series(True, index=frame.index)
    if start is not None:
        keep &= frame["ts"] >= pd.Timestamp(start)
    if end is not None:
        keep &= frame["ts"] <= pd.Timestamp(end)
    if sensors is not None:
        keep &= frame["sensor_id"].isin(sensors)
    out = frame[keep].sort_values(["sensor_id", "ts"]).reset_index(drop=True)
    return out, types.SimpleNamespace(rows_read=len(out), rows_valid=len(out), invalid_by_check={})


def module_settings(kafka_bootstrap: str, tmp: Path) -> Settings:
    """Like make_settings, for a module-scoped fixture (trained models shared by its tests)."""
    run = uuid.uuid4().hex[:10]
    settings = Settings(  # type: ignore[call-arg]
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{run}",
        consumer_group_prefix=f"g{run}",
        data_dir=tmp / "data",
        topic_partitions=2,
        kafka_session_timeout_ms=2000,
    )
    settings.data_dir.mkdir(parents=True)
    start_mlflow_store(settings)
    return settings


@contextlib.contextmanager
def data_side_stand_ins() -> Iterator[None]:
    """The raw store and the DVC repository replaced by the stand-ins above."""
    dataset = types.ModuleType("driftline.training.dataset")
    dataset.load_readings = stand_in_load_readings  # type: ignore[attr-defined]
    datarepo = types.ModuleType("driftline.training.datarepo")
    datarepo.DataRepo = StandInRepo  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "driftline.training.dataset", dataset)
        mp.setitem(sys.modules, "driftline.training.datarepo", datarepo)
        yield


@pytest.fixture(scope="module")
def env(
    kafka_bootstrap: str, skab_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.SimpleNamespace]:
    """Settings shared by this module's tests (like make_settings, but module-scoped so the
    trained models are shared), the data-side stand-ins, and three datasets."""
    tmp = tmp_path_factory.mktemp("model_steps")
    settings = module_settings(kafka_bootstrap, tmp)
    with data_side_stand_ins():
        window = settings.feature_window
        files = {n: skab_file(skab_dir, n) for n in (0, 1, 2, 3, *RECENT_FILES)}
        full = add_features(pd.concat([files[n] for n in range(4)]), FEATURES, window)
        corrupted = full.copy()
        corrupted["label"] = np.random.default_rng(0).permutation(full["label"].to_numpy())
        repo = StandInRepo(settings)
        repo.save_dataset("small", add_features(files[0], FEATURES, window))
        repo.save_dataset("full", full)
        repo.save_dataset("corrupted", corrupted)
        repo.save_dataset("tune", full)
        recent = pd.concat([files[n] for n in RECENT_FILES], ignore_index=True)
        recent.loc[recent.index[:UNLABELLED], "label"] = np.nan
        recent.to_parquet(settings.data_dir / "stand_in_raw.parquet", index=False)
        yield types.SimpleNamespace(
            settings=settings, start=recent["ts"].min(), end=recent["ts"].max()
        )


@pytest.fixture(scope="module")
def small_model(env: types.SimpleNamespace) -> Any:
    from driftline.training.train import train

    return train(env.settings, "small", run_name="small")


def test_train_registers_a_version_with_its_lineage(
    env: types.SimpleNamespace, small_model: Any
) -> None:
    from driftline.training.modeling import EXPERIMENT, mlflow_client

    settings = env.settings
    assert small_model.model_name == settings.model_name
    assert small_model.model_version == "1"
    assert set(small_model.metrics) == {"precision", "recall", "f1", "pr_auc"}
    client = mlflow_client(settings)
    run = client.get_run(small_model.run_id)
    assert run.data.metrics["f1"] == pytest.approx(small_model.metrics["f1"])
    # Labelled faults in the data and no tuned pick: the xgboost family's defaults.
    assert run.data.params["family"] == "xgboost" == small_model.family
    assert json.loads(run.data.params["recipe"])["windows"] == [5, 15, 30, 60]
    assert float(run.data.params["threshold"]) == 0.5
    assert run.data.tags["baselines_version"] == small_model.baselines_version
    tags = run.data.tags
    assert tags["data_tag"] == "small"
    assert tags["dvc_md5"] == StandInRepo(settings).dataset_hash("small")
    assert len(tags["git_commit"]) == 40 or tags["git_commit"] == "unknown"
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    assert experiment.artifact_location.startswith(settings.data_dir.resolve().as_uri())
    artifacts = {
        a.path for d in ("reference", "plots") for a in client.list_artifacts(run.info.run_id, d)
    }
    assert artifacts == {
        "reference/reference.parquet",
        "reference/baselines",  # the bundle's, for the drift service
        "plots/pr_curve.png",
        "plots/feature_importance.png",
    }
    version = client.get_model_version(settings.model_name, "1")
    assert version.tags["data_tag"] == "small"
    assert version.tags["family"] == "xgboost"
    # The baselines are versioned with the dataset, and the model carries the same ones.
    saved = StandInRepo(settings).load_baselines("small")
    assert saved is not None and [b.sensor_id for b in saved] == ["skab-valve1-0"]
    assert json.loads(
        Path(
            client.download_artifacts(
                run.info.run_id, "baselines/versions.json", str(settings.data_dir)
            )
        ).read_text()
    ) == {"skab-valve1-0": saved[0].version}
    reference = pd.read_parquet(
        client.download_artifacts(
            run.info.run_id, "reference/reference.parquet", str(settings.data_dir)
        )
    )
    assert list(reference.columns) == [*FEATURES, "sensor_id"]
    assert set(reference["sensor_id"]) == {"skab-valve1-0"}


def test_evaluate_writes_html_and_markdown(env: types.SimpleNamespace, small_model: Any) -> None:
    from driftline.training.evaluate import evaluate

    result = evaluate(env.settings, small_model.model_name, "1", env.start, env.end)
    assert result.rows_unlabelled == UNLABELLED
    assert result.rows > 2000
    assert 0.0 <= result.metrics["f1"] <= 1.0
    assert result.drift_share is not None
    assert "<html" in result.html_path.read_text()[:2000].lower()
    summary = result.markdown_path.read_text()
    assert "| f1 |" in summary and f"no label: {UNLABELLED}" in summary


def decisions(settings: Settings) -> list[Any]:
    engine = sa.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            query = sa.select(promotion_decisions).order_by(promotion_decisions.c.id)
            return list(conn.execute(query))
    finally:
        engine.dispose()


def test_promotion_keeps_the_better_model(env: types.SimpleNamespace, small_model: Any) -> None:
    import bentoml

    from driftline.training import registry
    from driftline.training.modeling import mlflow_client
    from driftline.training.promote import promote
    from driftline.training.train import train

    settings, name = env.settings, small_model.model_name
    client = mlflow_client(settings)

    first = promote(settings, name, "1", env.start, env.end, request_id="r1")
    assert first.promoted and "no champion" in first.reason
    assert registry.champion_version(client, name) == "1"
    bento = bentoml.models.get(name)
    assert bento.info.labels["mlflow_version"] == "1"
    assert Path(first.reference_uri or "").is_file()
    # The drift service finds the model's baselines beside its reference.
    saved = StandInRepo(settings).load_baselines("small") or []
    beside = bundle_baselines(first.reference_uri or "")
    assert {s: b.version for s, b in beside.items()} == {b.sensor_id: b.version for b in saved}
    events = asyncio.run(read_topic(settings, Topics(settings.topic_prefix).model_promotions))
    assert len(events) == 1
    event = ModelPromoted.model_validate_json(events[0].value or b"")
    assert (event.model_version, event.request_id) == ("1", "r1")
    assert event.reference_uri == first.reference_uri

    corrupted = train(settings, "corrupted", run_name="corrupted")
    lost = promote(settings, name, corrupted.model_version, env.start, env.end)
    assert not lost.promoted
    assert lost.challenger_score is not None and lost.champion_score is not None
    assert lost.challenger_score < lost.champion_score
    assert "does not beat champion version 1" in lost.reason
    assert registry.champion_version(client, name) == "1"

    better = train(settings, "full", run_name="full")
    won = promote(settings, name, better.model_version, env.start, env.end)
    assert won.promoted, won.reason
    assert registry.champion_version(client, name) == better.model_version
    previous = registry.version_by_alias(client, name, registry.PREVIOUS_CHAMPION)
    assert previous is not None and str(previous.version) == "1"
    assert bentoml.models.get(name).info.labels["mlflow_version"] == better.model_version
    events = asyncio.run(read_topic(settings, Topics(settings.topic_prefix).model_promotions))
    assert [ModelPromoted.model_validate_json(e.value or b"").model_version for e in events] == [
        "1",
        better.model_version,
    ]

    rows = decisions(settings)
    assert [(r.challenger_version, r.promoted) for r in rows] == [
        ("1", True),
        (corrupted.model_version, False),
        (better.model_version, True),
    ]
    assert rows[1].reason == lost.reason and rows[1].champion_version == "1"
    assert rows[0].request_id == "r1"


def test_tune_saves_the_automl_pick_and_train_fits_it(env: types.SimpleNamespace) -> None:
    """The tune step's search runs on Ray Tune with Optuna; every trial is an MLflow run."""
    import ray

    from driftline.anomaly.automl_ray import SEARCHER
    from driftline.anomaly.model import ModelSpec
    from driftline.training.modeling import mlflow_client
    from driftline.training.train import train
    from driftline.training.tune import tune

    started = time.monotonic()
    result = tune(env.settings, "tune", count=4)
    print(f"tune with 4 trials took {time.monotonic() - started:.1f}s")
    assert not ray.is_initialized()  # the step's own Ray is shut down
    # Each family's defaults, then the first of the families' turns (Optuna's suggestion).
    assert result.trials == 4
    assert 0.0 <= result.score <= 1.0
    spec = ModelSpec.model_validate(result.params["anomaly_spec"])
    assert spec.family == result.family
    assert StandInRepo(env.settings).load_params("tune") == result.params
    # Every trial is an MLflow run with the model's four parts, named by Ray Tune.
    client = mlflow_client(env.settings)
    experiment = client.get_experiment_by_name("driftline-automl")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    families = sorted(r.data.params["family"] for r in runs)
    assert families == ["mset", "pca-t2q", "pca-t2q", "xgboost"]
    assert {r.data.tags["driftline.searcher"] for r in runs} == {SEARCHER}
    assert len({r.data.tags["driftline.trial_id"] for r in runs}) == 4
    for run in runs:
        assert {"family", "recipe", "params", "threshold", "smooth"} <= set(run.data.params)
        json.loads(run.data.params["recipe"])
        assert 0.0 <= run.data.metrics["cv_far"] <= 100.0 and "cv_f1" in run.data.metrics
        # What the pick ranks by: the median sensor's out-of-fold F1, logged beside the pooled.
        assert 0.0 <= run.data.metrics["cv_typical_f1"] <= 1.0

    # The train step then fits that pick.
    trained = train(env.settings, "tune", run_name="tuned")
    run = client.get_run(trained.run_id)
    assert run.data.params["family"] == spec.family and run.data.tags["spec_origin"] == "tuned"
    assert float(run.data.params["threshold"]) == pytest.approx(spec.threshold)


def test_stand_ins_have_the_data_sides_api() -> None:
    """The stand-ins above must not drift from the real data side they replace."""
    import inspect

    from driftline.training import datarepo, dataset

    methods = ("load_dataset", "save_params", "load_params", "dataset_hash", "tags")
    for method in (*methods, "save_baselines", "load_baselines"):
        real = inspect.signature(getattr(datarepo.DataRepo, method)).parameters
        assert list(real) == list(inspect.signature(getattr(StandInRepo, method)).parameters)
    assert list(inspect.signature(dataset.load_readings).parameters) == list(
        inspect.signature(stand_in_load_readings).parameters
    )
