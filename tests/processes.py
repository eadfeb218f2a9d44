"""Services as separate processes, as in production: start, SIGKILL, restart, observe.

Each process gets its settings from the environment (``Settings.to_env()``), its own metrics
port, and a log file; the test reads its counters from /metrics and its memory from /proc.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from driftline.core.settings import Settings
from driftline.platform import procs
from driftline.platform.ports import bindable
from driftline.platform.services import service_script


class ServiceProcess:
    """A service as its own process, as in production, that the test can kill and restart."""

    def __init__(self, name: str, settings: Settings, log_path: Path, metrics: bool = False):
        self.name = name
        if metrics:  # below the ephemeral range: free again at every restart (port_block)
            settings = settings.model_copy(update={"metrics_port": port_block(1)})
        self.metrics_port = settings.metrics_port
        self.env = {**os.environ, **settings.to_env()}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = procs.start(
                [sys.executable, str(service_script(self.name))], env=self.env, stdout=log
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.alive(), f"{self.name} died on its own; see {self.log_path}"
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            procs.stop_group(self.proc, timeout=15)

    def rss_kib(self) -> int:
        """Resident memory (VmRSS) of the running process, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for {self.name} (pid {self.pid})")

    def metrics(self) -> dict[str, float]:
        """The process's Prometheus samples, summed per metric name (labels dropped);
        empty while the process starts and its port does not answer yet."""
        assert self.metrics_port is not None, f"{self.name} was started without a metrics port"
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (localhost)
                text = response.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def stop_all(processes: Iterable[ServiceProcess]) -> None:
    for p in processes:
        p.stop()


_handed_out: set[int] = set()  # blocks chosen before their children bound them


def port_block(count: int = 8) -> int:
    """The first of ``count`` consecutive free ports below the kernel's ephemeral range: a
    child binds its port seconds after the test chose it, and in the ephemeral range the local
    end of any client connection (another child's, to the broker) could take it meanwhile."""
    try:
        path = Path("/proc/sys/net/ipv4/ip_local_port_range")
        low = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    first, last = _worker_range(20000, max(20001, low - count))
    for _ in range(500):
        base = random.randrange(first, last)  # nosec B311: not security
        block = range(base, base + count)
        if not _handed_out.intersection(block) and all(bindable(port) for port in block):
            _handed_out.update(block)
            return base
    raise RuntimeError(f"no {count} consecutive free ports between {first} and {last + count}")


def _worker_range(low: int, high: int) -> tuple[int, int]:
    """This pytest-xdist worker's own slice of [low, high), or all of it without workers: a
    block another worker chose but its child has not bound yet still looks free from here."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return low, high
    size = (high - low) // count
    first = low + int(worker[2:]) * size
    return first, first + size
