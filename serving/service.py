"""Driftline's online anomaly scoring: BentoML 1.4 services serving the MLflow champion.

Two services, so that concurrent requests are scored together by BentoML's adaptive batching:

- ``AnomalyService`` (public, one worker): checks the readings with the shared reading schema,
  computes their features from each sensor's recent readings (the training feature function),
  and asks the scorer. One worker, because each sensor's history must live in one place.
- ``ChampionScorer`` (internal, batchable): scores feature rows with the champion and swaps in
  a new champion without downtime (``driftline.champion``).

    bentoml serve service:AnomalyService --working-dir serving    # or: driftline serve
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import bentoml
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from driftline.json_guard import RequireJsonBody

MAX_READINGS_PER_REQUEST = 1000
# Adaptive batching: BentoML's dispatcher sizes batches (up to 1024 feature rows) and waits
# from its measured cost, not a fixed delay. max_latency_ms is its shedding deadline: a request
# it predicts cannot be answered by then gets 503 ("process is overloaded"). At 5 ms a swap
# (loading the new model takes the GIL for a moment) shed requests; 1 s sheds only real overload.
MAX_BATCH_SIZE = 1024
MAX_LATENCY_MS = 1000


class Score(BaseModel):
    probability: float
    model_name: str
    model_version: str


class ModelInfo(BaseModel):
    model_name: str
    model_version: str | None
    source: str | None


class Prediction(BaseModel):
    sensor_id: str
    ts: datetime
    seq: int | None
    anomaly_probability: float = Field(ge=0, le=1)
    label: int = Field(description="1: anomaly (probability >= the serving threshold)")
    model_name: str
    model_version: str


@bentoml.service(name="driftline-scorer", workers=1, traffic={"timeout": 30})
class ChampionScorer:
    """Feature rows in, anomaly probabilities out, from the champion in service."""

    def __init__(self) -> None:
        from driftline.champion import ChampionWatcher, ServingSettings
        from driftline.profile import load_profile
        from driftline.training.features import feature_columns

        self.settings = ServingSettings()
        self.columns = feature_columns(load_profile(self.settings.profile_path).features)
        self.watcher = ChampionWatcher(self.settings)
        self.watcher.start()

    def __is_ready__(self) -> bool:
        return self.watcher.current is not None

    @bentoml.on_shutdown
    def _stop_watching(self) -> None:
        self.watcher.stop()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def score(self, rows: list[list[float]]) -> list[Score]:
        import pandas as pd

        from driftline import serving_metrics

        model = self.watcher.current  # read once: this batch finishes on it whatever happens
        if model is None:
            raise bentoml.exceptions.ServiceUnavailable("no champion model loaded yet")
        serving_metrics.scoring_batch_size.observe(len(rows))
        frame = pd.DataFrame(rows, columns=self.columns, dtype="float64")
        return [
            Score(probability=float(p), model_name=model.name, model_version=model.version)
            for p in model.anomaly_probabilities(frame)
        ]

    @bentoml.api
    def model(self) -> ModelInfo:
        current = self.watcher.current
        return ModelInfo(
            model_name=self.settings.model_name,
            model_version=current.version if current else None,
            source=current.source if current else None,
        )


@bentoml.service(name="driftline-anomaly", workers=1, traffic={"timeout": 30})
class AnomalyService:
    """POST /predict: one wire-format reading (or a list) in, a prediction for each out."""

    scorer = bentoml.depends(ChampionScorer)

    def __init__(self) -> None:
        from driftline.champion import ServingSettings
        from driftline.profile import load_profile
        from driftline.serving_input import SensorHistory, make_validator

        settings = ServingSettings()
        profile = load_profile(settings.profile_path)
        self.threshold = settings.serving_threshold
        self.validator = make_validator(profile, settings.max_message_bytes)
        self.history = SensorHistory(profile.features, settings.feature_window)

    async def __is_ready__(self) -> bool:
        info = await self.scorer.to_async.model()
        return ModelInfo.model_validate(info).model_version is not None

    @bentoml.api
    async def model(self) -> ModelInfo:
        """The model in service (POST, as every BentoML API)."""
        return ModelInfo.model_validate(await self.scorer.to_async.model())

    async def _score(self, rows: list[list[float]]) -> list[Any]:
        import aiohttp

        try:
            return list(await self.scorer.to_async.score(rows))
        except aiohttp.ClientConnectionError:
            # The link to the scorer broke (a pooled connection closed); scoring is pure: once more.
            return list(await self.scorer.to_async.score(rows))

    @bentoml.api
    async def predict(self, body: Any, /) -> list[Prediction] | Prediction:
        """Readings in the wire format (``sensor_id``, ``ts``, optional ``seq``, ``values``).

        A request with any invalid reading is rejected whole with 422 and, per reading index,
        every check it failed; nothing of it is scored or remembered.
        """
        from driftline import serving_metrics
        from driftline.records import FailedCheck
        from driftline.serving_input import RejectedReading, check_readings

        items = body if isinstance(body, list) else [body]
        try:
            if len(items) > MAX_READINGS_PER_REQUEST:
                too_many = f"{len(items)} readings; at most {MAX_READINGS_PER_REQUEST} a request"
                raise RejectedReading({0: [FailedCheck(check="too_many", detail=too_many)]})
            readings = check_readings(self.validator, items)
        except RejectedReading as rejected:
            for reasons in rejected.reasons.values():
                for reason in reasons:
                    serving_metrics.readings_rejected.labels(reason.check).inc()
            return JSONResponse(rejected.as_json(), status_code=422)  # type: ignore[return-value]
        serving_metrics.readings_per_request.observe(len(readings))
        inputs = self.history.model_inputs(readings)
        scores = [Score.model_validate(s) for s in await self._score(inputs.to_numpy().tolist())]
        out = []
        for reading, score in zip(readings, scores, strict=True):
            label = int(score.probability >= self.threshold)
            serving_metrics.predictions.labels(str(label)).inc()
            out.append(
                Prediction(
                    sensor_id=reading.sensor_id,
                    ts=reading.ts,
                    seq=reading.seq,
                    anomaly_probability=score.probability,
                    label=label,
                    model_name=score.model_name,
                    model_version=score.model_version,
                )
            )
        return out if isinstance(body, list) else out[0]


# A body that is not JSON: 400 with the reason (BentoML's own parser would answer 500).
AnomalyService.add_asgi_middleware(RequireJsonBody)
