"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol, for the one test
that looks at a page as an operator does."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from driftline.platform import procs
from driftline.platform.broker import free_port

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)


class Page:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self.ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        async for message in self.ws:
            body = json.loads(message.data)
            if body.get("id") == call_id:
                if "error" in body:
                    raise RuntimeError(f"{method}: {body['error']}")
                result: dict[str, Any] = body.get("result", {})
                return result
        raise RuntimeError("the browser closed the connection")

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def chromium(profile_dir: Path, log_path: Path) -> AsyncIterator[Page]:
    exe = shutil.which("chromium")
    if exe is None:
        raise RuntimeError("chromium not found: run scripts/chromium.sh")
    port = free_port()
    with log_path.open("ab") as log:
        process = procs.start(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={profile_dir}",
                f"--remote-debugging-port={port}",
                "about:blank",
            ],
            stdout=log,
        )
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                        targets = await answer.json()
                    page = next(t for t in targets if t.get("type") == "page")
                    break
                except (aiohttp.ClientError, StopIteration):
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise
                    await asyncio.sleep(0.5)
            async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                yield Page(ws)
    finally:
        procs.stop_group(process, timeout=10)
