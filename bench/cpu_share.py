"""Where a machine's CPU went during a window: the measured processes', the broker's, the
database server's and everything else's, sampled in a thread every ``interval`` seconds.

Used by ``stream_throughput.py`` to say whether a pipeline waits for the cores (all busy) or
for something else (cores idle while it waits), and who else had them.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from dataclasses import dataclass

import psutil

_BUSY = ("user", "nice", "system", "irq", "softirq", "steal")  # iowait is idle


@dataclass(frozen=True)
class CpuShare:
    """CPU seconds of one window by whom, and what the cores could have given."""

    seconds: float  # the window's wall clock
    capacity: float  # cores x seconds
    targets: float  # the measured processes (their own process_time)
    broker: float
    database: float
    others: float  # every other process on the machine (other sessions' work too)
    load_average: float  # 1-minute load average at the window's start

    @property
    def idle(self) -> float:
        return max(0.0, self.capacity - self.targets - self.broker - self.database - self.others)


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    try:
        t = process.cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system)


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return sum(float(getattr(t, name, 0.0)) for name in _BUSY)


def find_broker() -> psutil.Process | None:
    """The embedded broker this process started (a child running ``... broker``), if any."""
    for child in psutil.Process().children(recursive=True):
        with _quiet():
            if "broker" in child.cmdline()[1:2]:
                return child
    return None


def find_database(url: str) -> psutil.Process | None:
    """The MariaDB/MySQL server at ``url``, if it runs on this machine (by the pid file it
    names: tests may run private servers beside it)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            pid_file = str(conn.execute(text("SELECT @@pid_file")).scalar_one())
        with open(pid_file) as f:
            return psutil.Process(int(f.read().strip()))
    except (OSError, ValueError, psutil.Error):
        return None
    finally:
        engine.dispose()


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, psutil.Error)


class CpuSampler:
    """Samples (time, broker CPU, database CPU, machine busy CPU) until stopped."""

    def __init__(
        self,
        broker: psutil.Process | None,
        database: psutil.Process | None,
        interval: float = 0.05,
    ) -> None:
        self.broker = broker
        self.database = database
        self.interval = interval
        self.samples: list[tuple[float, float, float, float]] = []
        self.load_averages: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            now = time.time()
            self.samples.append((now, _cpu(self.broker), _cpu(self.database), _machine_busy()))
            if not self.load_averages or now - self.load_averages[-1][0] >= 1.0:
                self.load_averages.append((now, os.getloadavg()[0]))
            if self._stop.wait(self.interval):
                return

    def _at(self, when: float) -> tuple[float, float, float]:
        """Each counter at ``when``, interpolated between the samples around it."""
        times = [s[0] for s in self.samples]
        i = bisect.bisect_left(times, when)
        if i <= 0:
            return self.samples[0][1:]
        if i >= len(self.samples):
            return self.samples[-1][1:]
        (t0, *a), (t1, *b) = self.samples[i - 1], self.samples[i]
        share = (when - t0) / (t1 - t0) if t1 > t0 else 0.0
        return tuple(x + (y - x) * share for x, y in zip(a, b, strict=True))  # type: ignore[return-value]

    def share(self, start: float, end: float, targets_cpu: float) -> CpuShare:
        """The CPU of the window ``[start, end]`` (``time.time()``), ``targets_cpu`` being
        what the measured processes reported for it."""
        b0, d0, m0 = self._at(start)
        b1, d1, m1 = self._at(end)
        broker, database, busy = b1 - b0, d1 - d0, m1 - m0
        load = next((value for when, value in self.load_averages if when >= start), 0.0)
        seconds = end - start
        return CpuShare(
            seconds=seconds,
            capacity=(psutil.cpu_count() or 1) * seconds,
            targets=targets_cpu,
            broker=broker,
            database=database,
            others=max(0.0, busy - targets_cpu - broker - database),
            load_average=load or os.getloadavg()[0],
        )
