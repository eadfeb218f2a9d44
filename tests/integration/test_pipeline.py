"""The retraining pipeline through KFP's local runner, against MariaDB holding SKAB readings,
real MLflow (local store), DVC (local remote), BentoML (local store) and the real broker."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from driftline.core.records import ModelPromoted
from driftline.core.topics import Topics
from driftline.store.raw_store import RawStore
from driftline.store.tables import promotion_decisions
from tests.skab import land_skab
from tests.streams import read_topic

pytestmark = pytest.mark.integration

TRAIN_FILES = range(0, 8)
EVAL_FILES = range(8, 12)


def run_pipeline(settings, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {**os.environ, **settings.to_env()}
    result = subprocess.run(
        [sys.executable, "-m", "driftline.cli.main", "pipeline", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return result


def decisions(store: RawStore) -> list[dict]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(promotion_decisions).order_by(promotion_decisions.c.id))
        return [dict(r._mapping) for r in rows]


@pytest.mark.timeout(1200)  # three pipeline runs of about a minute each, slower under load
async def test_pipeline_promotes_a_better_model_and_not_a_worse_one(
    make_settings, mariadb_url, skab_dir
):
    settings = make_settings(database_url=mariadb_url, tune_samples=2)
    store = RawStore.from_url(mariadb_url)
    store.create_tables()
    valve = sorted((skab_dir / "valve1").glob("*.csv"), key=lambda p: int(p.stem))
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    clean_end = land_skab(store, [valve[i] for i in TRAIN_FILES], t0, "pump-001")
    t1 = clean_end + timedelta(hours=1)
    corrupt_end = land_skab(store, [valve[i] for i in TRAIN_FILES], t1, "pump-002", flip=True)
    t2 = corrupt_end + timedelta(hours=1)
    eval_end = land_skab(store, [valve[i] for i in EVAL_FILES], t2, "pump-003")
    window = ["--eval-start", t2.isoformat(), "--eval-end", eval_end.isoformat()]

    # Run 1: the whole pipeline on clean data; no champion yet, so it is promoted.
    out = run_pipeline(
        settings,
        "--tag",
        "v1",
        "--data-start",
        t0.isoformat(),
        "--data-end",
        clean_end.isoformat(),
        "--tune-count",
        "2",
        *window,
    ).stdout
    for step in ("preprocess", "tune", "train", "evaluate", "promote"):
        assert f"[driftline] {step}: done" in out, step

    from driftline.training.modeling import mlflow_client

    client = mlflow_client(settings)  # tracking and registry: MLflow keeps a process-wide one
    champion = client.get_model_version_by_alias(settings.model_name, "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["data_tag"] == "v1"
    assert run.data.tags["git_commit"]
    assert run.data.tags["dvc_md5"]
    assert {"precision", "recall", "f1", "pr_auc"} <= set(run.data.metrics)

    from driftline.training.datarepo import DataRepo

    repo = DataRepo(settings)
    assert "v1" in repo.tags()
    assert repo.dataset_hash("v1") == run.data.tags["dvc_md5"]
    assert repo.load_params("v1")

    # BentoML fixes its store on first use in a process: ask a fresh one about this test's store.
    labels = subprocess.run(
        [
            sys.executable,
            "-c",
            "import bentoml, sys; print(bentoml.models.get(sys.argv[1] + ':latest').info.labels)",
            settings.model_name,
        ],
        env={**os.environ, "BENTOML_HOME": str(settings.resolved_bentoml_home)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"'mlflow_version': '{champion.version}'" in labels  # imported on promotion

    promotions = [
        ModelPromoted.model_validate_json(m.value)
        for m in await read_topic(settings, Topics(settings.topic_prefix).model_promotions)
    ]
    assert [p.model_version for p in promotions] == [str(champion.version)]
    assert Path(promotions[0].reference_uri).exists()

    # Run 2: trained on flipped labels; it must lose to the champion, and say why.
    run_pipeline(
        settings,
        "--tag",
        "v2-corrupt",
        "--data-start",
        t1.isoformat(),
        "--data-end",
        corrupt_end.isoformat(),
        "--skip",
        "tune",
        *window,
    )
    assert (
        client.get_model_version_by_alias(settings.model_name, "champion").version
        == champion.version
    )
    recorded = decisions(store)
    assert [d["promoted"] for d in recorded] == [True, False]
    lost = recorded[-1]
    assert lost["champion_version"] == str(champion.version)
    assert lost["challenger_score"] < lost["champion_score"]
    assert lost["reason"]

    # Run 3: only evaluate + promote, on the version run 2 registered.
    out = run_pipeline(
        settings,
        "--tag",
        "v2-corrupt",
        "--skip",
        "preprocess,tune,train",
        "--model-version",
        lost["challenger_version"],
        *window,
    ).stdout
    assert "[driftline] train: done" not in out and "[driftline] preprocess: done" not in out
    assert "[driftline] evaluate: done" in out and "[driftline] promote: done" in out
    assert [d["promoted"] for d in decisions(store)] == [True, False, False]
    assert len(await read_topic(settings, Topics(settings.topic_prefix).model_promotions)) == 1
    store.engine.dispose()
