"""ASGI middleware: a request body that is not JSON gets 400 with a reason, not a 5xx.

BentoML parses the body before the API function runs and answers a JSON syntax error with
500; this checks the body first, then hands it on unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from driftline.parsing import load_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequireJsonBody:
    def __init__(self, app: App, paths: tuple[str, ...] = ("/predict",)) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # disconnected: let the app see it
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            load_json(body)
        except ValueError as exc:
            await _reject(send, f"the body is not JSON: {exc}"[:300])
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reject(send: Send, detail: str) -> None:
    reason = {"check": "not_json", "column": None, "detail": detail}
    payload = orjson.dumps(
        {"error": "invalid request body", "readings": [{"index": 0, "reasons": [reason]}]}
    )
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
