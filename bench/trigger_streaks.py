"""A restarted trigger's streaks (DecisionStore.streaks): three queries for up to 400 sensors
with a streak (heads, firings, and each sensor's windows in one UNION ALL), against the
baseline of one query per sensor with a streak (the code it replaced, kept in
tests/integration/test_trigger_streaks.py), on the same trigger_decisions rows.

Rows: ``--windows`` decisions per sensor, each window drifted with probability 0.8 (else the
streak resets), and a streak of 3 consumed by a firing half the time. Medians over
``--repeats``; both give the same streaks (checked).

    .venv/bin/python bench/trigger_streaks.py [--sensors 50 500] [--windows 200] [--repeats 5]
        [--mariadb mysql+pymysql://root@127.0.0.1:3306]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from driftline.store.raw_store import RawStore  # noqa: E402
from driftline.store.tables import trigger_decisions
from driftline.trigger.store import DecisionStore  # noqa: E402
from tests.integration.test_trigger_streaks import streaks_one_query_per_sensor  # noqa: E402

T0 = datetime(2026, 12, 1)


def fill(engine: sa.Engine, sensors: int, windows: int) -> None:
    rng = random.Random(1)
    rows = []
    for n in range(windows):
        for s in range(sensors):
            sensor = f"pump-{s:04d}"
            rows.append((sensor, n, rng.random() < 0.8))
    streak: dict[str, int] = {}
    values = []
    for sensor, n, drifted in rows:
        length = streak.get(sensor, 0) + 1 if drifted else 0
        fired = length >= 3 and rng.random() < 0.5
        streak[sensor] = 0 if fired else length
        start = T0 + timedelta(minutes=n)
        values.append(
            {
                "decided_at": start,
                "drift_event_id": uuid.uuid4().hex,
                "sensor_id": sensor,
                "drift_share": 1.0 if drifted else 0.1,
                "fired": fired,
                "reason": "bench",
                "request_id": None,
                "streak": streak[sensor],
                "window_start": start,
                "window_end": start + timedelta(seconds=59),
                "fired_sensors": json.dumps([sensor]) if fired else None,
            }
        )
    with engine.begin() as conn:
        conn.execute(sa.insert(trigger_decisions), values)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds), result


def run(label: str, url: str, sensors: int, windows: int, repeats: int) -> None:
    store = RawStore.from_url(url)
    store.create_tables()
    try:
        fill(store.engine, sensors, windows)
        base, expected = timed(lambda: streaks_one_query_per_sensor(store.engine), repeats)
        new, got = timed(DecisionStore(store.engine).streaks, repeats)
        if got != expected:
            raise SystemExit(f"{label}: the two give different streaks")
        print(
            f"{label:<8} {sensors:>7} {sensors * windows:>8} {len(got):>8} "
            f"{base * 1000:>12.1f} {new * 1000:>10.1f} {base / new:>6.1f}"
        )
    finally:
        store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sensors", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mariadb", default="mysql+pymysql://root@127.0.0.1:3306")
    args = parser.parse_args()
    print(
        f"{args.windows} decisions per sensor, medians of {args.repeats}; "
        f"sqlalchemy {sa.__version__}, python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'database':<8} {'sensors':>7} {'rows':>8} {'streaks':>8} "
        f"{'per-sensor ms':>12} {'batched ms':>10} {'x':>6}"
    )
    for sensors in args.sensors:
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{tmp}/raw.db", sensors, args.windows, args.repeats)
        name = f"bench_streaks_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(f"{args.mariadb}/test")
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        try:
            run("mariadb", f"{args.mariadb}/{name}", sensors, args.windows, args.repeats)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f"DROP DATABASE {name}"))
            admin.dispose()


if __name__ == "__main__":
    main()
