"""The AutoML search on Ray Tune, with Optuna's TPE sampler as its search algorithm.

Ray runs the trials (one CPU each, as many at a time as Ray has CPUs); each trial is one
``Search.evaluate`` of the spec Optuna suggested (``automl_space.SearchSpace``), in
``automl.ray_objective``. The driver
collects every finished trial in the order Tune created them and hands each to ``on_trial``
as it finishes (the MLflow logger). A Ray this process already runs is used as it is;
otherwise one is started here, small and quiet (no dashboard, no worker logs, no usage
reporting), and shut down after. Only the tune step and the benchmark import this module
(Ray takes seconds to import).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import optuna
import ray
from ray import tune
from ray.tune import Callback, Stopper
from ray.tune.logger import JsonLoggerCallback
from ray.tune.search.optuna import OptunaSearch

from driftline.anomaly.automl import Search, Trial, ray_objective
from driftline.anomaly.automl_space import SearchSpace
from driftline.anomaly.model import ModelSpec
from driftline.anomaly.scores import OutlierScore

log = logging.getLogger(__name__)

SEARCHER = "ray-tune/optuna-tpe"
OBJECTIVE = "cv_f1"
# Read by Ray and Tune when a run starts: Tune's own progress table, result files and
# TensorBoard logs are not wanted (MLflow has every trial); nothing is reported to Anyscale.
QUIET_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}
OBJECT_STORE_BYTES = 128 * 2**20  # the recordings of a search are a few MB


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def quiet_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in QUIET_ENV}
    os.environ.update(QUIET_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Ray for a search: the one this process runs, else a local one (or the cluster at
    ``address``) started here and shut down on leaving."""
    if ray.is_initialized():
        yield
        return
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    with quiet_env():
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(
                num_cpus=cores(),
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                **common,
            )
    try:
        yield
    finally:
        ray.shutdown()


def tune_search(
    search: Search,
    space: SearchSpace,
    budget_seconds: float,
    max_trials: int,
    seed: int,
    on_trial: Callable[[Trial], None] | None = None,
    address: str | None = None,
) -> list[Trial]:
    """Trials until ``budget_seconds`` have passed (but not before every family has a
    finished trial) or ``max_trials`` ran; in the order Tune created them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with ray_session(address), quiet_env(), tempfile.TemporaryDirectory() as storage:
        collector = _Collector(on_trial)
        searcher = OptunaSearch(
            space=space,
            metric=OBJECTIVE,
            mode="max",
            points_to_evaluate=space.first_points(),
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        parallel = max(int(ray.cluster_resources().get("CPU", 1)), 1)
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(ray_objective, search=search), {"cpu": 1}),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=max_trials,
                max_concurrent_trials=parallel,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name="driftline-automl",
                storage_path=storage,
                stop=_Budget(budget_seconds, space.families, collector),
                callbacks=[collector, JsonLoggerCallback()],
                verbose=0,
                log_to_file=False,
            ),
        )
        tuner.fit()
    if not collector.found:
        raise RuntimeError(f"no AutoML trial finished ({collector.errors} failed)")
    if collector.errors:
        log.warning("%d of the AutoML trials failed (Tune logged why)", collector.errors)
    return [trial for _, trial in sorted(collector.found, key=lambda it: it[0])]


def _trial(result: dict[str, Any], trial_id: str) -> Trial:
    score = OutlierScore(
        float(result[OBJECTIVE]),
        float(result["cv_far"]),
        float(result["cv_mar"]),
        int(result["cv_rows"]),
    )
    spec = ModelSpec.model_validate_json(result["spec_json"])
    typical = result.get("cv_typical_f1")
    return Trial(
        spec,
        score,
        float(result["seconds"]),
        searcher=SEARCHER,
        trial_id=trial_id,
        typical_f1=None if typical is None else float(typical),
    )


class _Collector(Callback):
    """Tune callback on the driver: every finished trial, with its creation index."""

    def __init__(self, on_trial: Callable[[Trial], None] | None) -> None:
        self.on_trial = on_trial
        self.found: list[tuple[int, Trial]] = []
        self.settled: set[str] = set()
        self.errors = 0
        self.started: float | None = None  # when the first trial started

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        result = trial.last_result or {}
        if OBJECTIVE not in result:
            return  # stopped by the budget before it reported
        found = _trial(result, trial.trial_id)
        self.found.append((trials.index(trial), found))
        self.settled.add(found.spec.family)
        if self.on_trial is not None:
            self.on_trial(found)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.errors += 1
        self.settled.add(str(trial.config.get("family", "")))


class _Budget(Stopper):
    """The search's time budget, counted from its first trial's start (Ray's start-up of the
    trial workers comes on top: seconds, more on a loaded machine). It waits for a result (or
    an error) of every family, so each family is compared even when the budget is short."""

    def __init__(self, seconds: float, families: Sequence[str], collector: _Collector) -> None:
        self.seconds = seconds
        self.families = set(families)
        self.collector = collector

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        started = self.collector.started
        if started is None or time.monotonic() < started + self.seconds:
            return False
        return self.families <= self.collector.settled
