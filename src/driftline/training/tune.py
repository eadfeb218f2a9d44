"""Tune step: a Ray Tune search over XGBoost parameters on one dataset version.

The objective is F1 on a validation split taken from the training part only (each sensor's
latest rows are held out twice: once for train's metrics, once inside that for tuning), so
tuning never sees the rows the train step reports metrics on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from driftline.profile import load_profile
from driftline.settings import Settings
from driftline.training import modeling
from driftline.training.scoring import classification_metrics, labelled

log = logging.getLogger(__name__)


class TuneResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    tag: str
    params: dict[str, Any]
    score: float
    trials: int


def search_space(positive_share: float) -> dict[str, Any]:
    from ray import tune

    # Up to the class ratio: anomalies are the minority class in sensor data.
    max_weight = max(1.0, (1.0 - positive_share) / max(positive_share, 1e-6))
    return {
        "max_depth": tune.randint(2, 9),
        "learning_rate": tune.loguniform(0.02, 0.3),
        "n_estimators": tune.randint(50, 401),
        "subsample": tune.uniform(0.6, 1.0),
        "colsample_bytree": tune.uniform(0.5, 1.0),
        "min_child_weight": tune.loguniform(0.5, 10.0),
        "scale_pos_weight": tune.uniform(1.0, max_weight),
    }


def _trial(
    config: dict[str, Any],
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> None:
    """One trial (runs in a Ray worker): fit on one thread, report validation metrics."""
    from ray import tune

    model = modeling.fit_model(x_fit, y_fit, config, n_jobs=1)
    tune.report(classification_metrics(y_val, model.predict_proba(x_val)[:, 1]))


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly values (numpy scalars become Python numbers)."""
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}


def tune(settings: Settings, tag: str, count: int | None = None) -> TuneResult:
    """Search ``count`` (default settings.tune_samples) parameter sets; save the best by tag."""
    import ray
    from ray import tune as ray_tune

    from driftline.training.datarepo import DataRepo

    features = load_profile(settings.profile_path).features
    repo = DataRepo(settings)
    frame = labelled(repo.load_dataset(tag))
    fit_part, _ = modeling.time_split(frame)
    fit_rows, val_rows = modeling.time_split(fit_part)
    x_fit = modeling.model_inputs(fit_rows, features).to_numpy()
    x_val = modeling.model_inputs(val_rows, features).to_numpy()
    y_fit, y_val = modeling.labels(fit_rows), modeling.labels(val_rows)
    if y_fit.sum() == 0 or y_val.sum() == 0:
        raise ValueError(f"dataset {tag} has no anomalies in its tuning or validation split")

    started_here = not ray.is_initialized()
    t0 = time.monotonic()
    if settings.ray_address:
        ray.init(address=settings.ray_address, ignore_reinit_error=True, log_to_driver=False)
    else:
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    log.info("ray ready in %.1fs", time.monotonic() - t0)
    try:
        trainable = ray_tune.with_resources(
            ray_tune.with_parameters(_trial, x_fit=x_fit, y_fit=y_fit, x_val=x_val, y_val=y_val),
            {"cpu": 1},
        )
        tuner = ray_tune.Tuner(
            trainable,
            param_space=search_space(float(y_fit.mean())),
            tune_config=ray_tune.TuneConfig(
                metric="f1", mode="max", num_samples=count or settings.tune_samples
            ),
            run_config=ray_tune.RunConfig(
                name=f"tune-{tag}-{int(time.time())}",
                storage_path=str((settings.data_dir / "ray_results").resolve()),
                verbose=0,
            ),
        )
        results = tuner.fit()
        best = results.get_best_result()
        if best.error is not None or best.metrics is None:
            raise RuntimeError(f"every tuning trial failed: {best.error}")
        params = _plain(dict(best.config or {}))
        score = float(best.metrics["f1"])
        trials = len(results)
    finally:
        if started_here:
            ray.shutdown()
    repo.save_params(tag, params)
    return TuneResult(tag=tag, params=params, score=score, trials=trials)
