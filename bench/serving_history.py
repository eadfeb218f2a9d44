"""What the shared Redis history (DRIFTLINE_SERVING_HISTORY_URL) costs per request, against
the in-memory history as the baseline, in one run.

1. The history step alone: ``SensorHistory.model_inputs`` for a request of 1, 16 and 128
   readings (of as many sensors) with the in-memory store and with the Redis store, a Redis
   PING beside them for the network round trip.
2. Whole requests (``--http``): a real ``bentoml serve`` with each store, one client sending
   one new reading per request, closed loop, at concurrency 1 and 8.

Redis is a ``redis-server`` of the benchmark's own on a free port (no persistence), or
``--redis-url``. Every figure is the median of ``--repeats`` runs.

    .venv/bin/python bench/serving_history.py [--http] [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from driftline.core.profile import load_profile
from driftline.core.records import ValidReading
from driftline.core.settings import DEFAULT_PROFILE, Settings
from driftline.platform import procs
from driftline.platform.broker import EmbeddedBroker, free_port
from driftline.serving.history import SensorHistory
from driftline.serving.history_redis import RedisHistory
from driftline.serving.serve import serve_command, serve_env, wait_until_ready

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parents[0]))  # tests.redis_server: the tests' own Redis
console = Console(width=110)
NORMAL_VALUES = {  # mid-range readings of the default profile's measurements
    "Accelerometer1RMS": 0.21,
    "Accelerometer2RMS": 0.27,
    "Current": 2.4,
    "Pressure": 0.11,
    "Temperature": 89.5,
    "Thermocouple": 28.5,
    "Voltage": 228.6,
    "Volume Flow RateRMS": 125.2,
}
FEATURES = load_profile(DEFAULT_PROFILE).features
WINDOW = Settings().feature_window


@contextlib.contextmanager
def redis_server(url: str | None, tmp: Path) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.redis_server import RedisServer

    server = RedisServer(tmp / "redis.log")
    try:
        yield server.url
    finally:
        server.stop()


def readings(size: int, step: int, run: str) -> list[ValidReading]:
    """``size`` readings of as many sensors, the ``step``-th of each sensor's series."""
    ts = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=step)
    rng = np.random.default_rng(step)
    return [
        ValidReading(
            reading_id=f"{run}-{s}-{step}",
            sensor_id=f"bench-{run}-{s}",
            ts=ts,
            seq=step,
            values={
                f: float(v)
                for f, v in zip(FEATURES, rng.normal(1, 0.1, len(FEATURES)), strict=True)
            },  # fmt: skip
        )
        for s in range(size)
    ]


def per_call_us(history: SensorHistory, size: int, calls: int, run: str) -> float:
    for step in range(2 * WINDOW):  # warm: each sensor holds a full history
        history.model_inputs(readings(size, step, run))
    batches = [readings(size, 2 * WINDOW + i, run) for i in range(calls)]
    start = time.perf_counter()
    for batch in batches:
        history.model_inputs(batch)
    return (time.perf_counter() - start) / calls * 1e6


def ping_us(url: str, calls: int) -> float:
    import redis

    client = redis.Redis.from_url(url)
    client.ping()
    start = time.perf_counter()
    for _ in range(calls):
        client.ping()
    return (time.perf_counter() - start) / calls * 1e6


def history_step(url: str, repeats: int) -> Table:
    table = Table(title=f"History step per request (median of {repeats} runs), microseconds")
    for column in ("readings a request", "in memory", "Redis", "Redis - memory", "x memory"):
        table.add_column(column, justify="right")
    for size in (1, 16, 128):
        calls = max(50, 2000 // size)
        memory, shared = [], []
        for r in range(repeats):
            memory.append(per_call_us(SensorHistory(FEATURES, WINDOW), size, calls, f"m{r}"))
            store = RedisHistory(url, FEATURES, 2 * WINDOW, prefix=f"bench:{time.time_ns()}:")
            shared.append(per_call_us(SensorHistory(FEATURES, WINDOW, store), size, calls, "r"))
        m, s = statistics.median(memory), statistics.median(shared)
        table.add_row(str(size), f"{m:,.0f}", f"{s:,.0f}", f"{s - m:,.0f}", f"{s / m:.1f}")
    ping = statistics.median(ping_us(url, 2000) for _ in range(repeats))
    table.caption = f"Redis PING round trip: {ping:,.0f} us (median)"
    return table


def http_latencies_ms(base: str, concurrency: int, requests: int, run: str) -> list[float]:
    import httpx

    latencies: list[float] = []
    start = datetime.now(UTC) - timedelta(hours=1)

    def client(n: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            for i in range(requests):
                reading = {
                    "sensor_id": f"pump-bench-{run}-{n}",
                    "ts": (start + timedelta(milliseconds=i * 50)).isoformat(),
                    "values": {f: v * (1 + 0.01 * (i % 7)) for f, v in NORMAL_VALUES.items()},
                }
                t = time.perf_counter()
                response = http.post("/predict", json=reading)
                latencies.append((time.perf_counter() - t) * 1e3)
                if response.status_code != 200:
                    raise SystemExit(f"{base}: {response.status_code} {response.text[:300]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def whole_requests(url: str, repeats: int, tmp: Path) -> Table:
    """Both services run at once and take turns, run by run: the load of this shared machine
    falls on both alike."""
    sys.path.insert(0, str(BENCH))
    from serving import SKAB_VALVE1, register_champion

    table = Table(title=f"Whole requests, one reading each (median of {repeats} runs)")
    for column in ("history", "concurrency", "p50 ms", "p90 ms", "req/s", "x memory req/s"):
        table.add_column(column, justify="left" if column == "history" else "right")
    targets = {"in memory": {}, "Redis": {"DRIFTLINE_SERVING_HISTORY_URL": url}}
    with EmbeddedBroker() as broker, contextlib.ExitStack() as stack:
        settings = Settings(  # type: ignore[call-arg]
            kafka_bootstrap_servers=broker.bootstrap_servers, data_dir=tmp
        )
        with console.status("training and registering the champion"):
            register_champion(settings, SKAB_VALVE1)
        bases = {name: stack.enter_context(serving(settings, extra, tmp))
                 for name, extra in targets.items()}  # fmt: skip
        for base in bases.values():
            http_latencies_ms(base, 4, 50, "warm")
        runs: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        for r in range(repeats):
            for concurrency in (1, 8):
                for name, base in bases.items():
                    t = time.perf_counter()
                    lat = http_latencies_ms(base, concurrency, 240 // concurrency,
                                            f"{name[0]}{concurrency}-{r}")  # fmt: skip
                    rate = len(lat) / (time.perf_counter() - t)
                    p50, p90 = np.percentile(lat, [50, 90])
                    runs.setdefault((name, concurrency), []).append((p50, p90, rate))
    for name in targets:
        for concurrency in (1, 8):
            columns = zip(*runs[name, concurrency], strict=True)
            p50, p90, rate = (statistics.median(x) for x in columns)
            memory = statistics.median(x[2] for x in runs["in memory", concurrency])
            table.add_row(name, str(concurrency), f"{p50:.1f}", f"{p90:.1f}", f"{rate:,.0f}",
                          f"{rate / memory:.2f}")  # fmt: skip
    return table


@contextlib.contextmanager
def serving(settings: Settings, extra: dict[str, str], tmp: Path) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (tmp / f"serve-{port}.log").open("wb") as log:
        child = procs.start(serve_command(port), env=serve_env(settings) | extra, stdout=log)
        try:
            wait_until_ready(base, child, timeout=180)
            yield base
        finally:
            procs.stop_group(child)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (medians)")
    parser.add_argument("--redis-url", default=None, help="a Redis to use instead of our own")
    parser.add_argument("--http", action="store_true", help="also whole requests via bentoml")
    args = parser.parse_args()
    from importlib.metadata import version

    import redis

    with tempfile.TemporaryDirectory() as tmp, redis_server(args.redis_url, Path(tmp)) as url:
        console.print(history_step(url, args.repeats))
        if args.http:
            console.print(whole_requests(url, args.repeats, Path(tmp)))
        server = redis.Redis.from_url(url).info("server")["redis_version"]
    console.print(
        f"{platform.python_version()} on {platform.machine()}; redis-py {version('redis')}, "
        f"Redis {server} on localhost; window {WINDOW}"
    )


if __name__ == "__main__":
    main()
