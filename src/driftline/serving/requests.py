"""ASGI middleware of serving's POST /predict: the wire format outside, the batchable API inside.

Clients send one wire-format reading or a list of them. BentoML's adaptive batching merges the
``readings`` lists of concurrent calls into one call of the API, whose answer for a request is
its slice, always with status 200. So this middleware

- before the API: decodes the body strictly (``driftline.strict_json``: 400 with the check it
  failed if it is not UTF-8 JSON without BOM, nests too deep, holds a lone surrogate, an
  integer beyond 64 bits or a key twice), refuses an empty or oversized request (422), and
  tags each reading with the request's id (a request with any invalid reading is rejected
  whole, also inside a merged batch);
- after it: answers 422 with every failed check by reading index when any reading of this
  request failed, 503 when nothing can be scored now (no champion yet), else the predictions
  (one object for a one-reading body).

With an API key configured (``driftline.api_key``), it first answers 401 to any request of a
protected route that does not carry the key.

No exception leaves this middleware, on any route: one that escaped would reach BentoML's
timeout middleware, which then answers nothing until its timeout (30 s) and drops the
exception. A failure of ours is logged with its traceback and answered 500 at once.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson
from pydantic import SecretStr

from driftline.serving import metrics as serving_metrics
from driftline.serving.api_key import ApiKeyGuard
from driftline.serving.path import RejectedRequest, Unavailable, answers, checked_items, tag
from driftline.validation.strict_json import MalformedJson, load_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

PATH = "/predict"
FIELD = "readings"  # the API's parameter
RETRY_AFTER_SECONDS = 5

log = logging.getLogger(__name__)


class PredictRequests:
    def __init__(
        self,
        app: App,
        max_readings: int = 1000,
        max_body_bytes: int = 8 << 20,
        api_key: SecretStr | None = None,
    ) -> None:
        self.app = app
        self.max_readings = max_readings
        self.max_body_bytes = max_body_bytes
        self.guard = ApiKeyGuard(api_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._handle(scope, receive, tracked)
        except Exception:
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if not started:
                detail = "the server failed on this request; its log has the traceback"
                await _respond(send, 500, {"error": "internal error", "detail": detail})

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.guard.needs_key(scope["path"])
            and not self.guard.allows(scope.get("headers", []))
        ):
            serving_metrics.unauthorized.inc()
            await _respond(
                send,
                401,
                {"error": "unauthorized", "detail": "a valid API key is required"},
                [(b"www-authenticate", b'Bearer realm="driftline"')],
            )
            return
        if scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive, self.max_body_bytes)
        if body is None:
            await _reject(send, 413, RejectedRequest.one("too_large", "the body is too large"))
            return
        try:
            decoded = load_json(body, max_bytes=self.max_body_bytes)
        except MalformedJson as exc:  # never anything else, whatever the bytes
            await _reject(send, 400, RejectedRequest.one(exc.check, exc.detail))
            return
        try:
            items = checked_items(decoded, self.max_readings)
        except RejectedRequest as rejected:
            await _reject(send, 422, rejected)
            return
        try:
            inner = orjson.dumps({FIELD: tag(items, uuid.uuid4().hex)})
        except orjson.JSONEncodeError as exc:
            # A backstop: the strict decoder already refuses what orjson cannot write (lone
            # surrogates, integers beyond 64 bits, deep nesting).
            detail = f"the body is not representable JSON: {exc}"[:300]
            await _reject(send, 400, RejectedRequest.one("not_json", detail))
            return
        answer = await _call(self.app, scope, inner, receive)
        if answer.status != 200:
            await answer.replay(send)
            return
        try:
            predictions = answers(orjson.loads(answer.body))
        except RejectedRequest as rejected:
            await _reject(send, 422, rejected)
            return
        except Unavailable as exc:
            serving_metrics.unavailable.inc()
            retry = [(b"retry-after", b"%d" % RETRY_AFTER_SECONDS)]
            await _respond(send, 503, {"error": "unavailable", "detail": str(exc)}, retry)
            return
        serving_metrics.readings_per_request.observe(len(predictions))
        for label, count in Counter(label_value(p["label"]) for p in predictions).items():
            serving_metrics.predictions.labels(label).inc(count)  # once a label, not a reading
        await _respond(send, 200, predictions if isinstance(decoded, list) else predictions[0])


def label_value(label: object) -> str:
    """The predictions counter's label value: the predicted label, or ``pending`` for a reading
    answered ``baseline: pending`` (no score, so no label)."""
    return "pending" if label is None else str(label)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Answer:
    def __init__(self) -> None:
        self.status = 500
        self.start: Message = {}
        self.chunks: list[bytes] = []

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    async def replay(self, send: Send) -> None:
        await send(self.start)
        await send({"type": "http.response.body", "body": self.body})


async def _call(app: App, scope: Scope, body: bytes, client: Receive) -> _Answer:
    """Run the app on ``body`` (as JSON) and hold its whole answer; after the body, the app
    hears from the client's own channel (a real disconnect)."""
    replaced = (b"content-length", b"content-type")
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in replaced]
    headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await client()

    answer = _Answer()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.start = message
        elif message["type"] == "http.response.body":
            answer.chunks.append(message.get("body", b""))

    await app({**scope, "headers": headers}, receive, send)
    return answer


async def _reject(send: Send, status: int, rejected: RejectedRequest) -> None:
    for reasons in rejected.reasons.values():
        for reason in reasons:
            serving_metrics.readings_rejected.labels(reason["check"]).inc()
    await _respond(send, status, rejected.as_json())


async def _respond(
    send: Send, status: int, payload: Any, extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    data = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]
    headers += list(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
