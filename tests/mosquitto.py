"""The machine's Mosquitto for the MQTT gateway's tests: the system broker at 127.0.0.1:1883,
or a private one with the test's own config (started from Debian's binary on a free port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from driftline.broker import free_port
from driftline.procs import die_with_parent, stop

SYSTEM_URL = "mqtt://127.0.0.1:1883"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class PrivateMosquitto:
    """``mosquitto -c <conf>`` on a free loopback port; ``extra`` lines go into its config.

    By default it queues without limit for a disconnected session (``max_queued_messages 0``;
    Mosquitto's default of 1000 drops the rest), which the gateway's restart tests rely on.
    """

    def __init__(self, directory: Path, extra: str = "", listener: str | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            (listener or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
            + "persistence false\nmax_queued_messages 0\nlog_dest stderr\n"
            + "log_type error\nlog_type warning\nlog_type notice\n"
            + extra
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> PrivateMosquitto:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with open(self.directory / "mosquitto.log", "ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - the system binary, fixed argv
                [binary, "-c", str(self.conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        deadline = time.monotonic() + timeout
        while not reachable("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mosquitto did not start: {self.log_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop(self.proc, timeout=10)

    def log_text(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""
