"""MLflow records of AutoML trials: each trial one run with the model's four parts as params
(family, feature recipe, parameters, threshold) and its cross-validated metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from driftline.anomaly.automl import Trial
from driftline.anomaly.model import ModelSpec

EXPERIMENT = "driftline-automl"


def trial_params(trial: Trial) -> dict[str, str]:
    return spec_params(trial.spec)


def spec_params(spec: ModelSpec) -> dict[str, str]:
    """A model's four parts (and its score smoothing) as MLflow parameters."""
    return {
        "family": spec.family,
        "recipe": spec.recipe.model_dump_json(),
        "params": json.dumps(spec.params, sort_keys=True),
        "threshold": repr(spec.threshold),
        "smooth": str(spec.smooth),
    }


def trial_metrics(trial: Trial) -> dict[str, float]:
    metrics = {
        "cv_f1": trial.score.f1,
        "cv_far": trial.score.far,
        "cv_mar": trial.score.mar,
        "seconds": trial.seconds,
    }
    if trial.typical_f1 is not None:
        metrics["cv_typical_f1"] = trial.typical_f1
    return metrics


def trial_tags(trial: Trial, search: str) -> dict[str, str]:
    """The search a trial belongs to, and which searcher ran it under what name."""
    tags = {"driftline.search": search}
    if trial.searcher:
        tags |= {"driftline.searcher": trial.searcher, "driftline.trial_id": trial.trial_id}
    return tags


def mlflow_trial_logger(
    tracking_uri: str, search: str, experiment: str = EXPERIMENT
) -> Callable[[Trial], None]:
    """A callback for ``run_search(on_trial=...)`` that records each trial as an MLflow run
    tagged with the ``search`` it belongs to."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    count = 0

    def log(trial: Trial) -> None:
        nonlocal count
        count += 1
        run = client.create_run(experiment_id, run_name=f"{search}-{count:03d}-{trial.spec.family}")
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, v, now, 0) for k, v in trial_metrics(trial).items()],
            params=[Param(k, v) for k, v in trial_params(trial).items()],
            tags=[RunTag(k, v) for k, v in trial_tags(trial, search).items()],
        )
        client.set_terminated(run.info.run_id)

    return log
