"""``driftline serve``: the BentoML service of ``serving/`` as a child process.

The child reads the same settings from its environment (``Settings.to_env``); models come
from the BentoML store at BENTOML_HOME, else ``<data_dir>/bentoml`` (where promotion imports
them), else from the MLflow registry.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from driftline.core.settings import Settings
from driftline.platform import procs

SERVING_DIR = Path(__file__).resolve().parents[3] / "serving"
TARGET = "service:AnomalyService"
# BentoML's server can lose a SIGTERM that arrives while it starts (it then runs on, orphaned):
# if whoever started it dies, Linux kills it outright; its workers follow it the same way.
SERVER_PARENT_DEATH = signal.SIGKILL


def serve_command(port: int, host: str = "127.0.0.1") -> list[str]:
    return [
        sys.executable, "-m", "bentoml", "serve", TARGET,
        "--working-dir", str(SERVING_DIR), "--host", host, "--port", str(port),
    ]  # fmt: skip


def serve_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, **settings.to_env()}


class NotReady(RuntimeError):
    """The service exited, or did not become ready in time."""


def wait_until_ready(base_url: str, child: subprocess.Popen[bytes], timeout: float) -> None:
    """Until GET /readyz answers 200 (a champion is loaded)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise NotReady(f"{base_url}: the server exited with {child.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise NotReady(f"{base_url} not ready within {timeout:.0f}s")


def serve(settings: Settings, port: int, host: str = "127.0.0.1") -> int:
    """Run the service until it exits, or until SIGTERM/SIGINT (Ctrl-C) stops it and every
    process it started; returns its exit code.

    The server runs in a process group of its own that is signalled as a whole (BentoML's
    workers go with it), and it gets SIGTERM from Linux if this process is SIGKILLed.
    """
    stopping: list[int] = []

    def _stop(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = procs.start(
            serve_command(port, host),
            env=serve_env(settings),
            stdin=None,
            stderr=None,
            parent_death=SERVER_PARENT_DEATH,
        )
        try:
            while not stopping:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return child.wait(timeout=0.2)
        finally:
            procs.stop_group(child, timeout=30)
        return 128 + stopping[0]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
