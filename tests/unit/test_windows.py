"""SensorWindows: per-sensor windows closing by count, event-time span and idleness."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from driftline.drift.windows import SensorWindows
from tests.unit.factories import NORMAL_VALUES, NOW, valid_reading

FEATURES = list(NORMAL_VALUES)
PLACE = ("valid", 0)


def reading(sensor: str = "pump-001", seconds: float = 0.0, seq: int = 0, current: float = 2.4):  # type: ignore[no-untyped-def]
    return valid_reading(
        sensor,
        NOW + timedelta(seconds=seconds),
        seq,
        NORMAL_VALUES | {"Current": current},
    )


def test_a_window_closes_when_it_holds_size_readings() -> None:
    windows = SensorWindows(FEATURES, size=5, max_seconds=900, min_size=2)
    readings = [reading(seconds=i, seq=i, current=float(i)) for i in range(5)]
    for i, r in enumerate(readings[:4]):
        assert windows.add(r, PLACE, offset=100 + i, now=0.0) == []
    assert len(windows) == 1
    (closed,) = windows.add(readings[4], PLACE, offset=104, now=0.0)
    assert len(windows) == 0
    assert closed.closed_by == "count"
    assert closed.sensor_id == "pump-001"
    assert len(closed) == 5
    assert closed.values.shape == (5, len(FEATURES))
    assert closed.values.dtype == np.float64
    # Columns in profile order, rows in arrival order.
    assert closed.values[:, FEATURES.index("Current")].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert closed.values[0].tolist() == [
        NORMAL_VALUES[f] if f != "Current" else 0.0 for f in FEATURES
    ]
    assert closed.start == NOW
    assert closed.end == NOW + timedelta(seconds=4)
    assert closed.first_reading_id == readings[0].reading_id
    assert closed.last_reading_id == readings[4].reading_id


def test_each_sensor_has_its_own_window() -> None:
    windows = SensorWindows(FEATURES, size=3, max_seconds=900, min_size=2)
    closed = []
    for i in range(3):
        closed += windows.add(reading("pump-001", i, i), PLACE, i * 2, now=0.0)
        closed += windows.add(reading("pump-002", i, i), PLACE, i * 2 + 1, now=0.0)
    assert [c.sensor_id for c in closed] == ["pump-001", "pump-002"]
    assert all(len(c) == 3 for c in closed)


def test_the_next_reading_after_a_count_close_opens_a_new_window() -> None:
    windows = SensorWindows(FEATURES, size=2, max_seconds=900, min_size=2)
    closed = []
    for i in range(5):
        closed += windows.add(reading(seconds=i, seq=i, current=float(i)), PLACE, i, now=0.0)
    assert [c.values[:, 2].tolist() for c in closed] == [[0.0, 1.0], [2.0, 3.0]]
    assert len(windows) == 1


def test_a_reading_past_the_event_time_span_closes_the_window_by_time() -> None:
    windows = SensorWindows(FEATURES, size=100, max_seconds=60, min_size=2)
    for i in range(3):
        windows.add(reading(seconds=20 * i, seq=i), PLACE, i, now=0.0)
    # 60 s after the start is still inside the window.
    assert windows.add(reading(seconds=60, seq=3), PLACE, 3, now=0.0) == []
    late = reading(seconds=60.5, seq=4, current=9.0)
    (closed,) = windows.add(late, PLACE, 4, now=0.0)
    assert closed.closed_by == "time"
    assert len(closed) == 4
    assert closed.end == NOW + timedelta(seconds=60)
    # The reading that closed it starts the next window.
    assert len(windows) == 1
    assert windows.oldest_needed() == {PLACE: 4}


def test_a_window_closed_by_time_with_too_few_readings_is_discarded() -> None:
    windows = SensorWindows(FEATURES, size=100, max_seconds=60, min_size=3)
    windows.add(reading(seconds=0, seq=0), PLACE, 0, now=0.0)
    windows.add(reading(seconds=1, seq=1), PLACE, 1, now=0.0)
    assert windows.add(reading(seconds=120, seq=2), PLACE, 2, now=0.0) == []
    assert windows.discarded == 1
    assert len(windows) == 1  # the new window of the late reading


def test_min_size_never_exceeds_size() -> None:
    windows = SensorWindows(FEATURES, size=3, max_seconds=60, min_size=50)
    assert windows.min_size == 3
    closed = []
    for i in range(3):
        closed += windows.add(reading(seconds=i, seq=i), PLACE, i, now=0.0)
    assert len(closed) == 1 and windows.discarded == 0


def test_out_of_order_readings_widen_the_window_range() -> None:
    windows = SensorWindows(FEATURES, size=3, max_seconds=900, min_size=2)
    windows.add(reading(seconds=10, seq=1), PLACE, 0, now=0.0)
    windows.add(reading(seconds=5, seq=0), PLACE, 1, now=0.0)
    (closed,) = windows.add(reading(seconds=8, seq=2), PLACE, 2, now=0.0)
    assert closed.start == NOW + timedelta(seconds=5)
    assert closed.end == NOW + timedelta(seconds=10)


def test_sweep_closes_only_idle_sensors() -> None:
    windows = SensorWindows(FEATURES, size=100, max_seconds=30, min_size=2)
    for i in range(3):
        windows.add(reading("pump-idle", i, i), PLACE, i, now=float(i))
    windows.add(reading("pump-busy", 0, 0), ("valid", 1), 0, now=0.0)
    windows.add(reading("pump-busy", 1, 1), ("valid", 1), 1, now=20.0)
    assert windows.sweep(now=32.0) == []  # silent for exactly 30 s: not yet
    (closed,) = windows.sweep(now=32.5)
    assert closed.sensor_id == "pump-idle"
    assert closed.closed_by == "time"
    assert len(closed) == 3
    assert len(windows) == 1
    (busy,) = windows.sweep(now=50.5)
    assert busy.sensor_id == "pump-busy"
    assert len(windows) == 0


def test_sweep_discards_idle_windows_that_are_too_small() -> None:
    windows = SensorWindows(FEATURES, size=100, max_seconds=30, min_size=5)
    windows.add(reading(), PLACE, 0, now=0.0)
    assert windows.sweep(now=100.0) == []
    assert windows.discarded == 1
    assert len(windows) == 0


def test_oldest_needed_is_the_first_offset_of_open_windows_per_partition() -> None:
    windows = SensorWindows(FEATURES, size=3, max_seconds=900, min_size=2)
    assert windows.oldest_needed() == {}
    p0, p1 = ("valid", 0), ("valid", 1)
    windows.add(reading("pump-a", 0, 0), p0, 10, now=0.0)
    windows.add(reading("pump-b", 0, 0), p0, 7, now=0.0)
    windows.add(reading("pump-c", 0, 0), p1, 42, now=0.0)
    windows.add(reading("pump-a", 1, 1), p0, 11, now=0.0)
    assert windows.oldest_needed() == {p0: 7, p1: 42}
    # pump-b's window closes: partition 0 now needs only pump-a's first offset.
    windows.add(reading("pump-b", 1, 1), p0, 12, now=0.0)
    windows.add(reading("pump-b", 2, 2), p0, 13, now=0.0)
    assert windows.oldest_needed() == {p0: 10, p1: 42}
    windows.sweep(now=1000.0)
    assert windows.oldest_needed() == {}


@pytest.mark.parametrize("size", [1, 7])
def test_every_reading_lands_in_exactly_one_window(size: int) -> None:
    windows = SensorWindows(FEATURES, size=size, max_seconds=1e9, min_size=1)
    closed = []
    for i in range(21):
        closed += windows.add(reading(seconds=i, seq=i, current=float(i)), PLACE, i, now=0.0)
    closed += windows.sweep(now=2e9)
    currents = np.concatenate([c.values[:, 2] for c in closed]).tolist()
    assert currents == [float(i) for i in range(21)]
