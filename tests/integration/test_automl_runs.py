"""The AutoML search against a real MLflow (SQLite store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from driftline.anomaly.automl import run_search
from driftline.anomaly.tracking import mlflow_trial_logger
from tests.pumps import pump

pytestmark = pytest.mark.integration


def test_every_trial_is_an_mlflow_run_with_the_models_four_parts(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    train = [pump(seed) for seed in range(4)]
    # max_trials ends this search, not the clock: on a loaded machine a 30 s budget ran out
    # after five trials (and the count below failed).
    result, _ = run_search(
        train, budget_seconds=3600.0, max_trials=6, folds=2, on_trial=mlflow_trial_logger(uri, "t1")
    )
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("driftline-automl")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.`driftline.search` = 't1'")
    assert len(runs) == len(result.trials) == 6
    logged = sorted((r.data.params["family"], r.data.metrics["cv_f1"]) for r in runs)
    assert logged == sorted((t.spec.family, t.score.f1) for t in result.trials)
    for run in runs:
        assert {"family", "recipe", "params", "threshold", "smooth"} <= set(run.data.params)
        json.loads(run.data.params["recipe"])
        assert 0.0 <= run.data.metrics["cv_far"] <= 100.0
