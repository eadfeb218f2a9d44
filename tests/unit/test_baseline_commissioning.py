"""Commissioning: a new sensor's first valid readings, its baseline stored first-wins, and the
drift service's cached view of the baseline store."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.anomaly.baseline import from_first_readings
from driftline.anomaly.baseline_store import BaselineStore
from driftline.anomaly.commissioning import Commissioning, baseline_of
from driftline.core import metrics
from driftline.core.records import ValidReading, epoch_ns
from driftline.drift.baselines import BaselineCompletion, StoredBaselines

MEASUREMENTS = ["flow", "current"]
START = datetime(2026, 1, 1, tzinfo=UTC)
NS = 1_000_000_000


def period(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    stamps = epoch_ns(START) + np.arange(n, dtype="int64") * NS
    return stamps, np.column_stack([32 + rng.normal(0, 0.5, n), 1 + rng.normal(0, 0.1, n)])


def test_collects_the_first_valid_readings_of_distinct_ts_in_ts_order() -> None:
    stamps, values = period(12)
    values[2, 0] = np.nan  # not valid: skipped
    c = Commissioning(MEASUREMENTS, 8)
    # Out of order, with a repeated ts whose first arrival counts.
    assert c.add("p", stamps[[5, 4, 3, 2]], values[[5, 4, 3, 2]]) is None
    repeated = values[[4]] + 100
    assert c.add("p", stamps[[4, 0, 1]], np.vstack([repeated, values[[0, 1]]])) is None
    assert "p" in c
    done = c.add("p", stamps[6:], values[6:])
    assert done is not None and "p" not in c
    ts, rows = done
    expected = [0, 1, 3, 4, 5, 6, 7, 8]  # 2 invalid, 9.. arrived after the eighth
    assert ts.tolist() == stamps[expected].tolist()
    np.testing.assert_array_equal(rows, values[expected])
    # The same rows make the same baseline as the whole-frame path training takes.
    frame = pd.DataFrame(values[expected], columns=MEASUREMENTS)
    frame["ts"] = pd.to_datetime(stamps[expected], unit="ns", utc=True)
    built = baseline_of("p", MEASUREMENTS, ts, rows)
    expected_baseline = from_first_readings(frame, "p", MEASUREMENTS, 8)
    assert expected_baseline is not None and built.to_json() == expected_baseline.to_json()


def test_complete_first_wins_and_both_sides_get_the_stored_one(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    first = baseline_of("pump/1", MEASUREMENTS, *period(20, seed=1))
    second = baseline_of("pump/1", MEASUREMENTS, *period(20, seed=2))
    assert first.version != second.version
    assert store.complete(first) == first
    assert store.complete(second) == first  # the later one is not stored
    assert store.get("pump/1") == first
    assert [p.name for p in store.directory.iterdir()] == [store.path("pump/1").name]
    # Raced by many: exactly one of them is stored, and every caller gets it back.
    candidates = [baseline_of("pump-2", MEASUREMENTS, *period(20, seed=s)) for s in range(16)]
    with ThreadPool(8) as pool:
        got = pool.map(store.complete, candidates)
    stored = store.get("pump-2")
    assert stored is not None and stored in candidates
    assert all(g == stored for g in got)


def test_stored_baselines_are_looked_at_again_after_the_refresh(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    now = [0.0]
    cached = StoredBaselines(store, refresh_seconds=10, clock=lambda: now[0])
    assert cached.get("p") is None
    one = baseline_of("p", MEASUREMENTS, *period(20, seed=1))
    store.save(one)
    now[0] = 9.9
    assert cached.get("p") is None  # the absence is kept until the refresh
    now[0] = 10.0
    assert cached.get("p") == one
    other = baseline_of("p", MEASUREMENTS, *period(20, seed=2))
    store.save(other)  # an operator sets a new one
    now[0] = 15.0
    assert cached.get("p") == one
    now[0] = 20.0
    assert cached.get("p") == other
    # Unchanged on disk: not read again (a changed file would be).
    store.path("p").write_text("not json")
    import os

    os.utime(store.path("p"), ns=(cached._entries["p"].mtime_ns,) * 2)  # noqa: SLF001
    now[0] = 30.0
    assert cached.get("p") == other


def test_drift_completion_stores_once_and_uses_what_was_stored_first(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    cached = StoredBaselines(store, refresh_seconds=10)
    completion = BaselineCompletion(cached, MEASUREMENTS, count=10)
    stamps, values = period(30)

    def readings(sensor: str, rows: range) -> list[ValidReading]:
        return [
            ValidReading(
                reading_id=f"{sensor}-{i}",
                sensor_id=sensor,
                ts=START + timedelta(seconds=i),
                values=dict(zip(MEASUREMENTS, values[i].tolist(), strict=True)),
            )
            for i in rows
        ]

    before = {
        o: metrics.drift_baselines_completed.labels(o)._value.get()  # noqa: SLF001
        for o in ("stored", "existing")
    }
    assert completion.add(readings("a", range(6)) + readings("b", range(6)), cached.get) == []
    # Serving stores its baseline of "b" first, before the cached absence is looked at again.
    servings = baseline_of("b", MEASUREMENTS, *period(10, seed=9))
    store.complete(servings)
    periods = completion.add(readings("a", range(6, 12)) + readings("b", range(6, 12)), cached.get)
    assert [p[0] for p in periods] == ["a", "b"]
    asyncio.run(completion.complete(periods))
    mine = store.get("a")
    assert mine is not None and mine.count == 10 and mine.sensor_id == "a"
    assert cached.get("a") is not None and cached.get("a").version == mine.version
    assert store.get("b").version == servings.version == cached.get("b").version
    after = {
        o: metrics.drift_baselines_completed.labels(o)._value.get()  # noqa: SLF001
        for o in ("stored", "existing")
    }
    assert after == {"stored": before["stored"] + 1, "existing": before["existing"] + 1}
    # A sensor with a baseline is no longer collected.
    assert completion.add(readings("a", range(12, 30)), cached.get) == []
    assert "a" not in completion.commissioning
