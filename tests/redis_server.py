"""A real Redis for tests: DRIFTLINE_TEST_REDIS_URL if set, else a ``redis-server`` of the
test session's own on a free port (no persistence), stopped with the session and killed with
the test run. ``scripts/ensure-redis.sh`` installs redis-server (Debian) where it is missing."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from driftline.platform import procs
from driftline.platform.broker import free_port


class RedisServer:
    """A redis-server child on a free port; ``stop`` and ``start`` again keep the port (its
    data is gone: nothing is persisted)."""

    def __init__(self, log_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run scripts/ensure-redis.sh")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log_path = log_path
        self.start()

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.child = procs.start(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.log_path.parent)],
            stdout=self._log,
        )  # fmt: skip
        self.wait_until_up()

    def wait_until_up(self, timeout: float = 15.0) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self.child.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        procs.stop_group(self.child, timeout=10)
        self._log.close()


@contextlib.contextmanager
def redis_url(tmp: Path) -> Iterator[str]:
    configured = os.environ.get("DRIFTLINE_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = RedisServer(tmp / "redis.log")
    try:
        yield server.url
    finally:
        server.stop()
