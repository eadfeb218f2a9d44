"""Label Studio's annotation webhook (ANNOTATION_CREATED / ANNOTATION_UPDATED, with payload).

An annotation that arrives here is stored at once; one that never arrives (the labeler was down,
the network dropped it) is found by the next periodic pull. The answer is 200 whenever the body
was an annotation event, taken or not (a rejected one is counted and retried by the pull; Label
Studio resending it would not help), 400 for a body that is not one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from driftline.labels.sync import LabelSync

log = logging.getLogger("driftline.labels")

MAX_BODY_BYTES = 8 * 1024 * 1024
ACTIONS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"}


def make_app(sync: LabelSync, after: Callable[[], Awaitable[None]]) -> web.Application:
    """``after`` runs once an annotation is stored (the labeler publishes it)."""

    async def receive(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("task"), dict):
            return web.json_response({"error": "not an annotation event"}, status=400)
        action = body.get("action")
        annotations = body.get("annotations") or [body.get("annotation")]
        if action not in ACTIONS or not all(isinstance(a, dict) for a in annotations):
            return web.json_response({"ignored": action})
        new = 0
        for annotation in annotations:
            new += await asyncio.to_thread(sync.accept, annotation, body["task"], "webhook")
        if new:
            try:
                await after()
            except Exception as exc:  # Kafka away: the labels stay unpublished for the next pass
                log.warning("publishing labels after a webhook failed: %s", exc)
        return web.json_response({"labels": new})

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/webhook", receive)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("receiving Label Studio webhooks on %s:%d/webhook", host, port)
    return runner
