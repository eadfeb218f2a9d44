"""The serving benchmark's baseline: a plain ASGI app on uvicorn, one process, the same model
and the same scoring path (``driftline.serving_path``) run per request, no batching.

    uvicorn plain_asgi:app --app-dir bench --port 3100    # settings from the environment
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from driftline.champion import load_version, one_thread
from driftline.profile import load_profile
from driftline.serving_path import RejectedRequest, ServingPath, answers, checked_items, tag
from driftline.settings import Settings
from driftline.training import modeling, registry

settings = Settings()
champion = registry.champion_version(modeling.mlflow_client(settings), settings.model_name)
if champion is None:
    raise SystemExit(f"no champion of {settings.model_name} in {settings.resolved_mlflow_uri}")
model = load_version(settings, settings.model_name, champion)
one_thread(model.model)  # as the BentoML service does
path = ServingPath(
    load_profile(settings.profile_path),
    feature_window=settings.feature_window,
    threshold=settings.serving_threshold,
    max_message_bytes=settings.max_message_bytes,
    model=lambda: model,
)


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
        items = checked_items(orjson.loads(body), settings.serving_max_readings)
        results = answers(path.score(tag(items, uuid.uuid4().hex)))
    except RejectedRequest as rejected:
        await _answer(send, 422, rejected.as_json())
        return
    except orjson.JSONDecodeError as exc:
        await _answer(send, 400, {"error": f"the body is not JSON: {exc}"})
        return
    await _answer(send, 200, results if body.lstrip().startswith(b"[") else results[0])


async def _answer(send: Any, status: int, payload: Any) -> None:
    data = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
