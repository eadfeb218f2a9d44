"""Driftline's online anomaly scoring: a BentoML 1.4 service serving the MLflow champion.

``POST /predict`` takes one wire-format reading or a list. ``driftline.predict_requests``
(ASGI middleware) turns the body into the batchable ``predict`` API's input, so BentoML's
adaptive batching merges the readings of concurrent requests into one call, which validates
them with the reading schema, computes features from each sensor's recent readings (the
training feature functions) and scores them with the champion (``driftline.serving_path``):
the fixed costs of validation and of the model are paid once per batch, not per request. The
middleware maps each request's slice back to its own answer: the predictions, or 422 with
every failed check. One worker: each sensor's history lives in this process, or, with
DRIFTLINE_SERVING_HISTORY_URL set, in Redis, shared by every replica
(``driftline.sensor_history_redis``).

A new champion is loaded in the background and swapped in between batches
(``driftline.champion``).

    bentoml serve service:AnomalyService --working-dir serving    # or: driftline serve
"""

from __future__ import annotations

import functools
import gc
import signal
from typing import Annotated, Any

import bentoml
from bentoml.validators import ContentType
from pydantic import BaseModel, Field

from driftline.core.settings import Settings
from driftline.platform import procs
from driftline.serving.requests import PredictRequests

# Stated, so BentoML need not derive the media type from a JSON schema on every response.
JsonList = Annotated[list[dict[str, Any]], ContentType("application/json")]


class ModelInfo(BaseModel):
    model_name: str
    model_version: str | None
    source: str | None = Field(description="BentoML model tag, or the models:/ URI loaded")


def make_service(settings: Settings) -> Any:
    """The service class, configured by ``settings`` (its batching, access log, request
    limits and API key are fixed when the class is made, as BentoML reads them then)."""

    @bentoml.service(
        name="driftline-anomaly",
        workers=1,
        traffic={"timeout": 30},
        # A log line per request costs about as much as scoring a reading; /metrics has the counts.
        logging={"access": {"enabled": settings.serving_access_log}},
        tracing={"excluded_urls": [] if settings.serving_trace_predictions else ["/predict"]},
    )
    class AnomalyService:
        def __init__(self) -> None:
            # BentoML starts this worker in a session of its own, out of reach of the signal
            # to the server's group: it must not outlive the server process that started it.
            if preexec := procs.die_with_parent(signal.SIGKILL):
                preexec()
                procs.exit_if_orphaned("bentoml")
            from driftline.core.logs import configure_package_logging
            from driftline.core.profile import load_profile
            from driftline.serving.champion import ChampionWatcher
            from driftline.serving.path import ServingPath
            from driftline.serving.publisher import PredictionPublisher

            configure_package_logging(settings.log_level, "serving")
            self.history = None
            model_history = None
            if settings.serving_history_url is not None:
                from driftline.serving.history_redis import RedisHistory

                self.history = RedisHistory(
                    settings.serving_history_url.get_secret_value(),
                    load_profile(settings.profile_path).features,
                    2 * settings.feature_window,
                    ttl_seconds=settings.serving_history_ttl_seconds,
                )
                # The anomaly model's own look-back (its longest window and smoothing), shared.
                model_history = RedisHistory(
                    settings.serving_history_url.get_secret_value(),
                    load_profile(settings.profile_path).features,
                    2 * settings.feature_window,
                    ttl_seconds=settings.serving_history_ttl_seconds,
                    prefix="driftline:model-history:v1:",
                )
            self.watcher = ChampionWatcher(settings, recent=model_history)
            self.publisher = None
            if settings.serving_publish_predictions:
                self.publisher = PredictionPublisher(settings)
                self.publisher.start()
            self.path = ServingPath(
                load_profile(settings.profile_path),
                feature_window=settings.feature_window,
                threshold=settings.serving_threshold,
                max_message_bytes=settings.max_message_bytes,
                model=lambda: self.watcher.current,
                publish=self.publisher.publish if self.publisher else None,
                history=self.history,
            )
            self.watcher.start()
            # What is loaded by now (BentoML, MLflow, pandas, the model: ~450,000 objects)
            # lives as long as the process. Frozen, it is out of the cyclic collector's way: a
            # full collection scans what requests made since, not the whole heap, which under
            # load took 0.3 CPU s every few seconds and stalled the batch in flight
            # (docs/benchmarks.md, issue 20).
            gc.freeze()

        def __is_ready__(self) -> bool:
            if self.watcher.current is None:
                return False
            return self.history is None or self.history.ping()

        @bentoml.on_shutdown
        def _stop(self) -> None:
            self.watcher.stop()
            if self.publisher is not None:
                self.publisher.stop()

        @bentoml.api(
            batchable=settings.serving_adaptive_batching,
            max_batch_size=settings.serving_max_batch_size,
            max_latency_ms=settings.serving_max_latency_ms,
        )
        def predict(self, readings: list[dict[str, Any]]) -> JsonList:
            """Readings in the wire format (``sensor_id``, ``ts``, optional ``seq``, ``values``):
            POST one reading, or a list of up to DRIFTLINE_SERVING_MAX_READINGS, as the body.

            Per reading: ``anomaly_probability``, ``label``, ``model_name``, ``model_version``,
            ``family``, ``baseline`` (``pending``: the sensor has no complete baseline yet, no
            score) and ``baseline_version`` (docs/models.md).
            A request with any invalid reading gets 422 and, per reading index, every check it
            failed; nothing of it is scored or remembered. 503 while no champion is loaded (or the
            shared history is away).
            """
            from driftline.serving import metrics as serving_metrics

            serving_metrics.scoring_batch_size.observe(len(readings))
            return self.path.score(readings)

        @bentoml.api
        def model(self) -> ModelInfo:
            """The model in service (POST, as every BentoML API)."""
            current = self.watcher.current
            return ModelInfo(
                model_name=settings.model_name,
                model_version=current.version if current else None,
                source=current.source if current else None,
            )

    AnomalyService.add_asgi_middleware(
        PredictRequests,
        max_readings=settings.serving_max_readings,
        api_key=settings.serving_api_key,
    )
    return AnomalyService


@functools.cache
def _service() -> Any:
    return make_service(Settings())


def __getattr__(name: str) -> Any:
    """``service:AnomalyService``, what ``bentoml serve`` imports: made from the environment's
    settings when first asked for, so importing this module reads and builds nothing."""
    if name == "AnomalyService":
        return _service()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
