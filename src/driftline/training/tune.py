"""Tune step: the AutoML search (``driftline.anomaly.automl.run_search``) on one dataset
version, within ``automl_budget_seconds``, on Ray Tune with Optuna (a local Ray started for the
step, or the cluster at ``RAY_ADDRESS``).

It searches model families, feature windows, parameters and the decision threshold by
group-wise cross-validation: whole sensors are held out, so the pick is the model that holds on
sensors it has not seen. Every trial is an MLflow run (experiment ``driftline-automl``, tagged
with the search, the searcher and Ray Tune's trial id); the pick is saved with the dataset
(``<tag>-params``) for the train step.
Only the training part of each sensor (its earlier rows) is searched on: the train step's
held-out rows stay unseen.
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from driftline.core.profile import load_profile
from driftline.core.settings import Settings

log = logging.getLogger(__name__)


class TuneResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    tag: str
    params: dict[str, Any]
    score: float
    trials: int
    family: str = ""
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.family} picked of {self.trials} trials in {self.seconds:.0f}s: "
            f"cross-validated F1 {self.score:.3f}"
        )


SPANS = 4


def time_spans(training: list[Any], count: int = SPANS) -> list[Any]:
    """A dataset of one sensor: its scored rows cut into ``count`` time spans, each judged by
    the sensor's baseline, so cross-validation holds out spans of time instead of sensors
    (a weaker test of carrying over: say so in the result's log)."""
    import dataclasses

    import numpy as np

    out = []
    for r in training:
        cuts = np.linspace(r.scored_from, len(r.values), count + 1).round().astype(int)
        for k, (a, b) in enumerate(itertools.pairwise(cuts)):
            start = 0 if k == 0 else int(a)
            out.append(
                dataclasses.replace(
                    r,
                    name=f"{r.name}#{k}",
                    values=r.values[start:b],
                    labels=None if r.labels is None else r.labels[start:b],
                    scored_from=int(r.scored_from) if k == 0 else 0,
                )
            )
    log.warning("one sensor only: AutoML holds out %d time spans of it, not sensors", count)
    return out


def tune(settings: Settings, tag: str, count: int | None = None) -> TuneResult:
    """Search up to ``count`` trials (default: until the time budget is spent); save the pick
    under ``<tag>-params``."""
    from driftline.anomaly.automl import run_search
    from driftline.anomaly.tracking import mlflow_trial_logger
    from driftline.training.anomaly_data import SPEC_KEY, recordings
    from driftline.training.datarepo import DataRepo
    from driftline.training.train import _split, versioned_baselines

    measurements = load_profile(settings.profile_path).features
    repo = DataRepo(settings)
    frame = repo.load_dataset(tag)
    baselines = versioned_baselines(settings, tag, frame, measurements)
    training = [_split(r)[0] for r in recordings(frame, baselines, measurements)]
    if len(training) < 2:
        training = time_spans(training)
    labelled = [r for r in training if r.labels is not None and r.labels.any()]
    families: tuple[Any, ...] = ("pca-t2q", "mset", "xgboost")
    if len(labelled) < 2:
        # XGBoost learns across sensors: it needs labelled faults in at least two of them.
        families = ("pca-t2q", "mset")
    started = time.monotonic()
    logger = mlflow_trial_logger(settings.resolved_mlflow_uri, f"tune-{tag}-{int(time.time())}")
    result, _ = run_search(
        training,
        budget_seconds=settings.automl_budget_seconds,
        families=families,
        max_trials=count or 200,
        measurement_sets=[None, tuple(measurements)],
        on_trial=logger,
        ray_address=settings.ray_address,
    )
    pick = result.pick()
    params = {SPEC_KEY: pick.spec.model_dump(mode="json")}
    repo.save_params(tag, params)
    seconds = time.monotonic() - started
    log.info("tune %s: %d trials in %.0fs, picked %s", tag, len(result.trials), seconds, pick.spec)
    return TuneResult(
        tag=tag,
        params=params,
        score=pick.score.f1,
        trials=len(result.trials),
        family=pick.spec.family,
        seconds=seconds,
    )
