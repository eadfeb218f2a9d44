"""Serving's ASGI middleware around a plain ASGI app: hostile bodies answered 4xx before the
API, 503 while nothing can be scored, and no exception leaving it (one that escaped would hang
the request until BentoML's timeout)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from driftline.serving.path import UNAVAILABLE
from driftline.serving.requests import PredictRequests

Message = dict[str, Any]


class Inner:
    """The API's stand-in: answers each tagged reading with ``result``, or raises."""

    def __init__(self, result: dict[str, Any] | None = None, fail: bool = False) -> None:
        self.result = result
        self.fail = fail
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        body = (await receive())["body"]
        if self.fail:
            raise RuntimeError("a bug of ours")
        readings = orjson.loads(body)["readings"]
        data = orjson.dumps([self.result or {"reasons": []} for _ in readings])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": data})


def call(app: Any, body: bytes, path: str = "/predict") -> tuple[int, dict[str, bytes], Any]:
    sent: list[Message] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "POST", "headers": []}
    asyncio.run(app(scope, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1, sent
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return starts[0]["status"], dict(starts[0]["headers"]), orjson.loads(payload)


GOOD = '{"sensor_id": "a", "ts": "2026-01-01T00:00:00Z", "values": {"Current": 1.0}}'
HOSTILE = {  # body, the check it fails
    "nested 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, "too_deep"),
    "nested 900 deep": (b"[" * 900 + b"]" * 900, "too_deep"),
    "lone surrogate in sensor_id": (b'{"sensor_id": "\\ud800", "values": {}}', "lone_surrogate"),
    "lone surrogate in a measurement": (b'{"values": {"\\udc00": 1.0}}', "lone_surrogate"),
    "401-digit value": (b'{"values": {"Current": ' + b"9" * 401 + b"}}", "number_too_large"),
    "401-digit seq": (b'{"sensor_id": "a", "seq": -' + b"9" * 401 + b"}", "number_too_large"),
    "UTF-16": (GOOD.encode("utf-16"), "bad_encoding"),
    "UTF-8 with BOM": (b"\xef\xbb\xbf" + GOOD.encode(), "bad_encoding"),
    "duplicate keys": (GOOD.replace("{", '{"sensor_id": "b", ', 1).encode(), "duplicate_key"),
    "not JSON": (b"{nope", "not_json"),
}


@pytest.mark.parametrize(("body", "check"), HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_body_is_refused_before_the_api(body: bytes, check: str) -> None:
    inner = Inner()
    status, _, payload = call(PredictRequests(inner), body)
    assert status == 400, payload
    assert payload["readings"][0]["reasons"][0]["check"] == check
    assert inner.calls == 0


@pytest.mark.parametrize("path", ["/predict", "/model"])
def test_a_failure_of_ours_is_answered_500_at_once_and_logged_with_its_traceback(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    body = b'{"sensor_id": "a", "ts": "2026-01-01T00:00:00Z", "values": {}}'
    with caplog.at_level(logging.ERROR, logger="driftline.serving.requests"):
        status, _, payload = call(PredictRequests(Inner(fail=True)), body, path)
    assert status == 500 and payload["error"] == "internal error"
    [record] = caplog.records
    assert record.exc_info is not None and "a bug of ours" in str(record.exc_info[1])
    assert path in record.getMessage()


def test_nothing_to_score_with_is_503_with_retry_after() -> None:
    inner = Inner({UNAVAILABLE: "no champion model is loaded yet"})
    body = b'[{"sensor_id": "a"}, {"sensor_id": "b"}]'
    status, headers, payload = call(PredictRequests(inner), body)
    assert status == 503
    assert payload == {"error": "unavailable", "detail": "no champion model is loaded yet"}
    assert int(headers[b"retry-after"]) > 0


def test_predictions_are_counted_by_label_and_pending_ones_as_pending() -> None:
    def counted(label: str) -> float:
        value = REGISTRY.get_sample_value("driftline_serving_predictions_total", {"label": label})
        return value or 0.0

    before = {label: counted(label) for label in ("pending", "0", "None")}
    body = f"[{GOOD}, {GOOD}]".encode()
    for result in ({"label": None, "anomaly_probability": None}, {"label": 0}):
        status, _, _ = call(PredictRequests(Inner(result)), body)
        assert status == 200
    assert counted("pending") - before["pending"] == 2
    assert counted("0") - before["0"] == 2
    assert counted("None") == before["None"]
