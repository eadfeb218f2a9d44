"""The cost of collecting new sensors' commissioning periods, per reading, in one run.

- ``per-row dict (before)``: serving's collector of before ``driftline.anomaly.commissioning``
  (each row into a dict by ts, the baseline built through a DataFrame and
  ``from_first_readings``), reimplemented here as the reference row.
- ``Commissioning``: the shared collector (arrays per call) and ``baseline_of``, as serving runs
  it on its batches.
- ``drift on loop`` / ``drift off loop``: the drift service's ``BaselineCompletion``: collecting
  its batches' readings (on the event loop), then building and storing the completed baselines
  (``complete``, in a worker thread).

50 sensors x 400 readings of 8 measurements, batches of 25 per sensor (serving) or 500 readings
(drift); median of 5 runs, each run's numbers printed.

    .venv/bin/python bench/baseline_collection.py
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.anomaly.baseline import from_first_readings
from driftline.anomaly.baseline_store import BaselineStore
from driftline.anomaly.commissioning import Commissioning, baseline_of
from driftline.core.records import ValidReading
from driftline.drift.baselines import BaselineCompletion, StoredBaselines

MEASUREMENTS = list("abcdefgh")
COUNT, SENSORS, BATCH, RUNS = 400, 50, 25, 5
Period = tuple[np.ndarray, np.ndarray]


def periods() -> dict[str, Period]:
    rng = np.random.default_rng(0)
    t0 = 1_700_000_000 * 10**9
    stamps = t0 + np.arange(COUNT, dtype="int64") * 10**9
    return {f"s{i}": (stamps, rng.normal(size=(COUNT, 8))) for i in range(SENSORS)}


def per_row_dict(data: dict[str, Period]) -> None:
    collecting: dict[str, dict[int, np.ndarray]] = {}
    for sensor, (stamps, values) in data.items():
        for lo in range(0, COUNT, BATCH):
            held = collecting.setdefault(sensor, {})
            for t, row in zip(
                stamps[lo : lo + BATCH].tolist(), values[lo : lo + BATCH], strict=True
            ):
                if np.isfinite(row).all() and len(held) < COUNT:
                    held.setdefault(int(t), row)
            if len(held) >= COUNT:
                ts = sorted(held)
                frame = pd.DataFrame(np.array([held[t] for t in ts]), columns=MEASUREMENTS)
                frame["ts"] = pd.to_datetime(ts, unit="ns", utc=True)
                from_first_readings(frame, sensor, MEASUREMENTS, COUNT)
                del collecting[sensor]


def commissioning(data: dict[str, Period]) -> None:
    collector = Commissioning(MEASUREMENTS, COUNT)
    for sensor, (stamps, values) in data.items():
        for lo in range(0, COUNT, BATCH):
            period = collector.add(sensor, stamps[lo : lo + BATCH], values[lo : lo + BATCH])
            if period is not None:
                baseline_of(sensor, MEASUREMENTS, *period)


def drift(data: dict[str, Period]) -> tuple[float, float]:
    """Seconds on the event loop (collecting) and off it (building and storing)."""
    store = BaselineStore(Path(tempfile.mkdtemp()) / "baselines")
    completion = BaselineCompletion(StoredBaselines(store, 10), MEASUREMENTS, COUNT)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    readings = [
        ValidReading(
            reading_id=f"{s}-{i}",
            sensor_id=s,
            ts=start + timedelta(seconds=i),
            values=dict(zip(MEASUREMENTS, data[s][1][i].tolist(), strict=True)),
        )
        for i in range(COUNT)
        for s in data
    ]
    on_loop = off_loop = 0.0
    for lo in range(0, len(readings), 500):
        a = time.perf_counter()
        done = completion.add(readings[lo : lo + 500], completion.stored.get)
        b = time.perf_counter()
        asyncio.run(completion.complete(done))
        on_loop += b - a
        off_loop += time.perf_counter() - b
    if len(store.all()) != SENSORS:
        raise RuntimeError("the drift service did not store every sensor's baseline")
    return on_loop, off_loop


def timed(fn: Callable[[dict[str, Period]], None], data: dict[str, Period]) -> float:
    a = time.perf_counter()
    fn(data)
    return time.perf_counter() - a


def main() -> None:
    data = periods()
    rows = SENSORS * COUNT
    results: dict[str, list[float]] = {}
    for _ in range(RUNS):
        results.setdefault("per-row dict (before)", []).append(timed(per_row_dict, data))
        results.setdefault("Commissioning", []).append(timed(commissioning, data))
        on_loop, off_loop = drift(data)
        results.setdefault("drift on loop", []).append(on_loop)
        results.setdefault("drift off loop", []).append(off_loop)
    print(f"{SENSORS} sensors x {COUNT} readings x {len(MEASUREMENTS)} measurements")
    for name, seconds in results.items():
        each = [s / rows * 1e6 for s in seconds]
        runs = ", ".join(f"{x:.1f}" for x in each)
        print(f"{name:22s} median {statistics.median(each):6.1f} us/reading  (runs {runs})")


if __name__ == "__main__":
    main()
