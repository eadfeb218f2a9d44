"""The champion model in service, and the watcher that swaps in a new one without downtime.

The model is read from the BentoML model store entry that promotion imported (labels
``mlflow_model``/``mlflow_version``), as the ``ModelBundle`` training logged (any family, with
the per-sensor baselines it was trained with; ``driftline.anomaly.registered``). When the
store holds no entry for the version (an import that failed, or a store that is not shared),
the registry's ``models:/<name>/<version>`` is loaded instead. Each reading is scored against
its sensor's baseline: the bundle's, else one set since in the baseline store, else none
yet: its prediction is ``baseline: pending``, with no score.

A ``ChampionWatcher`` thread follows the model_promotions topic (no consumer group, from the
end) and also asks the registry for the ``champion`` alias every ``poll_seconds``; a new
version is loaded in that thread and swapped in by one reference assignment, so a scoring call
that already holds the old model finishes on it. While the registry or Kafka is away, the
watcher logs the failure once (with its traceback) and again only when it changes or ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.anomaly.baseline import SensorBaseline
from driftline.anomaly.baseline_store import BaselineStore
from driftline.anomaly.bundle import OnlineScorer, RecentReadings, Scored
from driftline.anomaly.commissioning import store_completed
from driftline.core.records import ModelPromoted
from driftline.core.settings import Settings
from driftline.core.state_changes import StateChanges
from driftline.serving import metrics as serving_metrics
from driftline.training import modeling, registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    source: str  # the bento tag, or the models:/ URI it was loaded from
    model: Any  # a driftline.anomaly.registered.LoadedVersion
    scorer: OnlineScorer | None = None  # None: a version of before the anomaly families

    @property
    def family(self) -> str:
        return str(self.model.family)

    def anomaly_probabilities(self, inputs: pd.DataFrame) -> np.ndarray:
        """A version of before the anomaly families: its rolling-feature inputs' scores."""
        return modeling.anomaly_scores(self.model.legacy, inputs)

    def score_columns(
        self,
        sensor_ids: Sequence[str],
        stamps: np.ndarray,
        values: np.ndarray,
        features: Sequence[str],
    ) -> list[Scored] | None:
        """Each reading against its sensor's baseline (or pending), from the batch's columns:
        ``values`` (n, len(features)) in the order of ``features``. None for a version of
        before the anomaly families: it scores the rolling-feature inputs."""
        if self.scorer is None:
            return None
        measurements = self.scorer.bundle.measurements
        if tuple(features) != measurements:  # the bundle's order; NaN for one not sent
            gathered = np.full((len(values), len(measurements)), np.nan)
            for j, name in enumerate(measurements):
                if name in features:
                    gathered[:, j] = values[:, list(features).index(name)]
            values = gathered
        return self.scorer.score_columns(sensor_ids, stamps, values)


def _loaded(
    settings: Settings,
    name: str,
    version: str,
    source: str,
    model: Any,
    recent: RecentReadings | None = None,
) -> LoadedModel:
    scorer = None
    if model.bundle is not None:
        store = baseline_store(settings)
        scorer = OnlineScorer(
            model.bundle,
            lookup=store.get,
            recent=recent,
            baseline_readings=settings.baseline_readings,
            on_baseline=lambda baseline: _keep(store, baseline),
        )
    return LoadedModel(name, str(version), source, model, scorer)


def _keep(store: BaselineStore, baseline: SensorBaseline) -> SensorBaseline:
    """A baseline serving completed, stored where training and the drift service find it;
    the sensor's from then on is the one stored first (``store_completed``)."""
    return store_completed(store, baseline, serving_metrics.baselines_completed, log)


def baseline_store(settings: Settings) -> BaselineStore:
    """Where ``driftline baseline set`` keeps the baselines operators set."""
    return BaselineStore(settings.data_dir / "baselines")


def load_version(
    settings: Settings, name: str, version: str, recent: RecentReadings | None = None
) -> LoadedModel:
    """The registered ``version``: from the BentoML store if it holds it, else from MLflow.
    ``recent``: where its scorer keeps each sensor's last readings (default: this process)."""
    modeling.use_bentoml_home(settings)
    import bentoml

    from driftline.anomaly.registered import load_model_dir, load_registered

    try:
        entries = bentoml.models.list(name)
    except bentoml.exceptions.NotFound:  # the store holds no version of this model at all
        entries = []
    for entry in entries:
        labels = entry.info.labels
        if labels.get("mlflow_model") == name and labels.get("mlflow_version") == str(version):
            model = load_model_dir(Path(entry.path_of("mlflow_model")))
            return _loaded(settings, name, version, str(entry.tag), model, recent)
    modeling.use_mlflow(settings)
    uri = f"models:/{name}/{version}"
    model = load_registered(settings.resolved_mlflow_uri, name, str(version))
    return _loaded(settings, name, version, uri, model, recent)


def one_thread(model: Any) -> None:
    """Serving scores small batches one after another: XGBoost's OpenMP threads would only
    spin between them, taking the CPU the HTTP side needs."""
    bundle = getattr(model, "bundle", None)
    if bundle is not None:
        model = bundle.model.booster
    elif hasattr(model, "legacy"):
        model = model.legacy
    if hasattr(model, "get_booster"):
        model.get_booster().set_param({"nthread": 1})


class ChampionWatcher:
    """Holds the model in service and keeps it the registry's champion."""

    def __init__(self, settings: Settings, recent: RecentReadings | None = None) -> None:
        self.settings = settings
        self.recent = recent  # shared by replicas when set (Redis); else each model's own
        self.current: LoadedModel | None = None
        self._stop = threading.Event()
        self._check_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._registry = StateChanges(log, "reading the champion alias")
        self._promotions = StateChanges(log, "following the model promotions topic")
        self._loading = StateChanges(log, "loading the champion")

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def refresh(self) -> bool:
        """Load the champion if it differs from the model in service; True when swapped."""
        with self._check_lock:  # Kafka and the poll may ask at once: load each version once
            name = self.settings.model_name
            try:
                version = registry.champion_version(modeling.mlflow_client(self.settings), name)
            except Exception as exc:
                self._registry.failing(f"{name}: {exc}"[:300], traceback=True)
                return False
            self._registry.ok()
            if version is None or (self.current and self.current.version == version):
                return False
            try:
                loaded = load_version(self.settings, name, version, self.recent)
                one_thread(loaded.model)
            except Exception as exc:
                serving_metrics.model_swaps.labels("failed").inc()
                problem = f"{name} version {version}: {exc}"[:300]
                self._loading.failing(f"{problem}; keeping the model in service", traceback=True)
                return False
            self._loading.ok()
            old = self.current
            if old is not None and old.scorer is not None and loaded.scorer is not None:
                loaded.scorer.adopt(old.scorer.recent)  # each sensor's recent readings stay
            self.current = loaded  # the swap: one reference assignment
            serving_metrics.model_version.labels(name).set(float(version))
            serving_metrics.model_swaps.labels("swapped").inc()
            log.info(
                "serving %s version %s (from %s), was %s",
                name,
                version,
                loaded.source,
                old.version if old else "none",
            )
            return True

    def _run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        follow = asyncio.create_task(self._follow_promotions())
        try:
            while not self._stop.is_set():
                await asyncio.sleep(min(self.settings.serving_poll_seconds, 0.5))
                if self._due():
                    await asyncio.to_thread(self.refresh)
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow

    _last_poll: float = 0.0

    def _due(self) -> bool:
        now = asyncio.get_running_loop().time()
        if now - self._last_poll >= self.settings.serving_poll_seconds:
            self._last_poll = now
            return True
        return False

    async def _follow_promotions(self) -> None:
        """React to ModelPromoted events at once; the alias poll covers any we miss."""
        from tenacity import wait_fixed

        from driftline.core.retry import retry
        from driftline.core.topics import Topics
        from driftline.streaming.kafka import ensure_topics, make_consumer

        topic = Topics(self.settings.topic_prefix).model_promotions

        async def follow() -> None:
            consumer = None
            try:
                await ensure_topics(self.settings, [topic])
                consumer = make_consumer(
                    self.settings,
                    None,
                    [topic],
                    auto_offset_reset="latest",
                )
                await consumer.start()
                self._promotions.ok()
                while not self._stop.is_set():
                    polled = await consumer.getmany(timeout_ms=500)
                    for record in (r for batch in polled.values() for r in batch):
                        if self._is_ours(record.value):
                            await asyncio.to_thread(self.refresh)
            finally:
                if consumer is not None:
                    await consumer.stop()

        def failed(exc: BaseException, delay: float) -> None:
            self._promotions.failing(
                f"{topic}: {exc}; retrying every 5 s (the alias poll goes on)"[:300],
                traceback=exc,
            )

        # CancelledError is no Exception: it propagates, as it must.
        await retry(
            follow,
            retry_on=Exception,
            on_failure=failed,
            stopped=self._stop.is_set,
            wait=wait_fixed(5),
        )

    def _is_ours(self, value: bytes | None) -> bool:
        try:
            event = ModelPromoted.model_validate_json(value or b"")
        except ValueError:
            log.warning("ignoring a message that is not a ModelPromoted record")
            return False
        return event.model_name == self.settings.model_name
