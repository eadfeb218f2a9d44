"""The serving benchmark's baseline: a plain ASGI app on uvicorn, one process, doing per request
what any scorer must: decode the JSON body (orjson) into columns and make the same model call as
the service: an anomaly-family champion scores each reading against its sensor's baseline from
its recent readings (``LoadedModel.score_columns``, the service's scorer), one of before them
gets the rolling-feature inputs (``SensorHistory.inputs``, the same feature functions and
history as the service). Answered with the service's prediction fields. No validation (a
reading that is not the wire format fails with 400 or 500), no framework, no batching.

    uvicorn plain_asgi:app --app-dir bench --port 3100    # settings from the environment
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from driftline.anomaly.bundle import READY, Scored
from driftline.core.profile import load_profile
from driftline.core.records import epoch_ns, reading_id
from driftline.core.settings import Settings
from driftline.serving.champion import load_version, one_thread
from driftline.serving.history import SensorHistory
from driftline.training import modeling, registry

settings = Settings()
champion = registry.champion_version(modeling.mlflow_client(settings), settings.model_name)
if champion is None:
    raise SystemExit(f"no champion of {settings.model_name} in {settings.resolved_mlflow_uri}")
model = load_version(settings, settings.model_name, champion)
one_thread(model.model)  # as the BentoML service does
features = load_profile(settings.profile_path).features
history = SensorHistory(features, settings.feature_window)
values_of = operator.itemgetter(*features)
threshold = settings.serving_threshold


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/readyz":
        await _answer(send, 200, {"ready": True})
        return
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        await _answer(send, 400, {"error": f"the body is not JSON: {exc}"})
        return
    items = decoded if isinstance(decoded, list) else [decoded]
    stamps = [datetime.fromisoformat(r["ts"]).astimezone(UTC) for r in items]
    sensors = [r["sensor_id"] for r in items]
    ns = np.array([epoch_ns(t) for t in stamps], dtype="int64")
    values = np.array([values_of(r["values"]) for r in items], dtype="float64")
    scored = model.score_columns(sensors, ns, values, features)
    if scored is None:  # a version of before the anomaly families
        probabilities = model.anomaly_probabilities(history.inputs(sensors, ns, values))
        scored = [Scored(float(p), READY, None) for p in probabilities]
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    results = [
        {
            "v": 1,
            "reading_id": reading_id(s, t, r.get("seq")),
            "sensor_id": s,
            "ts": r["ts"],
            "seq": r.get("seq"),
            "anomaly_probability": o.probability,
            "label": None if o.probability is None else int(o.probability >= threshold),
            "model_name": model.name,
            "model_version": model.version,
            "family": model.family,
            "baseline": o.baseline,
            "baseline_version": o.baseline_version,
            "predicted_at": now,
        }
        for r, s, t, o in zip(items, sensors, stamps, scored, strict=True)
    ]
    await _answer(send, 200, results if isinstance(decoded, list) else results[0])


async def _answer(send: Any, status: int, payload: Any) -> None:
    data = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
