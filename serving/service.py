"""Driftline's online anomaly scoring: BentoML 1.4 services serving the MLflow champion.

- ``AnomalyService`` (public, ``DRIFTLINE_SERVING_WORKERS`` processes, stateless): takes one
  wire-format reading or a list, tags them with the request, and forwards them to the scorer;
  maps readings that failed a check to 422 with the reasons.
- ``ChampionScorer`` (internal, one process, batchable): BentoML's adaptive batching merges the
  readings of concurrent requests into one call, which validates them with the reading schema,
  computes features from each sensor's recent readings (the training feature function) and
  scores them with the champion: pandera's and the model's fixed costs are paid once per
  batch, not per request. One process, because each sensor's history must live in one place.
  It swaps in a newly promoted champion without downtime (``driftline.champion``).

    bentoml serve service:AnomalyService --working-dir serving    # or: driftline serve
"""

from __future__ import annotations

import uuid
from typing import Any

import bentoml
from pydantic import BaseModel
from starlette.responses import JSONResponse

from driftline.json_guard import RequireJsonBody
from driftline.records import Prediction
from driftline.settings import Settings

SETTINGS = Settings()


class ModelInfo(BaseModel):
    model_name: str
    model_version: str | None
    source: str | None


@bentoml.service(name="driftline-scorer", workers=1, traffic={"timeout": 30})
class ChampionScorer:
    """Tagged readings in, per reading a prediction or its failed checks out."""

    def __init__(self) -> None:
        from driftline.champion import ChampionWatcher
        from driftline.prediction_publisher import PredictionPublisher
        from driftline.profile import load_profile
        from driftline.serving_path import ServingPath

        self.watcher = ChampionWatcher(SETTINGS)
        self.publisher = None
        if SETTINGS.serving_publish_predictions:
            self.publisher = PredictionPublisher(SETTINGS)
            self.publisher.start()
        self.path = ServingPath(
            load_profile(SETTINGS.profile_path),
            feature_window=SETTINGS.feature_window,
            threshold=SETTINGS.serving_threshold,
            max_message_bytes=SETTINGS.max_message_bytes,
            model=lambda: self.watcher.current,
            publish=self.publisher.publish if self.publisher else None,
        )
        self.watcher.start()

    def __is_ready__(self) -> bool:
        return self.watcher.current is not None

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.watcher.stop()
        if self.publisher is not None:
            self.publisher.stop()

    @bentoml.api(
        batchable=SETTINGS.serving_adaptive_batching,
        max_batch_size=SETTINGS.serving_max_batch_size,
        max_latency_ms=SETTINGS.serving_max_latency_ms,
    )
    def score(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from driftline import serving_metrics
        from driftline.serving_path import NoModel

        serving_metrics.scoring_batch_size.observe(len(items))
        try:
            return self.path.score(items)
        except NoModel as exc:
            raise bentoml.exceptions.ServiceUnavailable(str(exc)) from exc

    @bentoml.api
    def model(self) -> ModelInfo:
        current = self.watcher.current
        return ModelInfo(
            model_name=SETTINGS.model_name,
            model_version=current.version if current else None,
            source=current.source if current else None,
        )


@bentoml.service(
    name="driftline-anomaly", workers=SETTINGS.serving_workers, traffic={"timeout": 30}
)
class AnomalyService:
    """POST /predict: one wire-format reading (or a list) in, a prediction for each out."""

    scorer = bentoml.depends(ChampionScorer)

    async def __is_ready__(self) -> bool:
        info = await self.scorer.to_async.model()
        return ModelInfo.model_validate(info).model_version is not None

    @bentoml.api
    async def model(self) -> ModelInfo:
        """The model in service (POST, as every BentoML API)."""
        return ModelInfo.model_validate(await self.scorer.to_async.model())

    @bentoml.api
    async def predict(self, body: Any, /) -> list[Prediction] | Prediction:
        """Readings in the wire format (``sensor_id``, ``ts``, optional ``seq``, ``values``).

        A request with any invalid reading is rejected whole with 422 and, per reading index,
        every check it failed; nothing of it is scored or remembered.
        """
        from driftline import serving_metrics
        from driftline.serving_path import RejectedRequest, answers, checked_items, tag

        try:
            items = checked_items(body, SETTINGS.serving_max_readings)
            results = answers(await self._score(tag(items, uuid.uuid4().hex)))
        except RejectedRequest as rejected:
            for reasons in rejected.reasons.values():
                for reason in reasons:
                    serving_metrics.readings_rejected.labels(reason["check"]).inc()
            return JSONResponse(rejected.as_json(), status_code=422)  # type: ignore[return-value]
        serving_metrics.readings_per_request.observe(len(results))
        predictions = [Prediction.model_validate(r) for r in results]
        for p in predictions:
            serving_metrics.predictions.labels(str(p.label)).inc()
        return predictions if isinstance(body, list) else predictions[0]

    async def _score(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        import aiohttp

        try:
            return list(await self.scorer.to_async.score(items))
        except aiohttp.ClientConnectionError:
            # A pooled connection to the scorer was closed under us. Scoring a reading again
            # gives the same answer (history keeps one row per sensor and ts): once more.
            return list(await self.scorer.to_async.score(items))


# A body that is not JSON: 400 with the reason (BentoML's own parser would answer 500).
AnomalyService.add_asgi_middleware(RequireJsonBody)
