"""Per-sensor windows of valid readings, bounded by count and by time. Pure logic.

The drift service feeds every valid reading in; a window closes when it holds
``size`` readings, when a reading arrives more than ``max_seconds`` of event time after the
window began, or (``sweep``) when its sensor has been silent that long by the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

from driftline.core.records import ValidReading

Place = tuple[str, int]  # (topic, partition)


@dataclass
class ClosedWindow:
    sensor_id: str
    start: datetime
    end: datetime
    values: np.ndarray  # rows x features, in profile order
    closed_by: Literal["count", "time"]
    first_reading_id: str
    last_reading_id: str

    def __len__(self) -> int:
        return int(self.values.shape[0])


@dataclass
class _OpenWindow:
    sensor_id: str
    start: datetime
    end: datetime
    place: Place
    first_offset: int
    first_reading_id: str
    last_reading_id: str
    opened_at: float  # wall clock (monotonic), for closing idle windows
    last_arrival: float
    rows: list[list[float]] = field(default_factory=list)


class SensorWindows:
    def __init__(self, features: list[str], size: int, max_seconds: float, min_size: int) -> None:
        self.features = features
        self.size = size
        self.max_seconds = max_seconds
        self.min_size = min(min_size, size)
        self._open: dict[str, _OpenWindow] = {}
        self.discarded = 0  # windows closed by time with too few readings to test

    def __len__(self) -> int:
        return len(self._open)

    def add(
        self, reading: ValidReading, place: Place, offset: int, now: float
    ) -> list[ClosedWindow]:
        closed: list[ClosedWindow] = []
        w = self._open.get(reading.sensor_id)
        if w is not None and (reading.ts - w.start).total_seconds() > self.max_seconds:
            closed += self._close(w, "time")
            w = None
        if w is None:
            w = self._open[reading.sensor_id] = _OpenWindow(
                sensor_id=reading.sensor_id,
                start=reading.ts,
                end=reading.ts,
                place=place,
                first_offset=offset,
                first_reading_id=reading.reading_id,
                last_reading_id=reading.reading_id,
                opened_at=now,
                last_arrival=now,
            )
        w.rows.append([reading.values[f] for f in self.features])
        w.start = min(w.start, reading.ts)
        w.end = max(w.end, reading.ts)
        w.last_reading_id = reading.reading_id
        w.last_arrival = now
        if len(w.rows) >= self.size:
            closed += self._close(w, "count")
        return closed

    def sweep(self, now: float) -> list[ClosedWindow]:
        """Close windows of sensors silent for longer than ``max_seconds`` (wall clock)."""
        idle = [w for w in self._open.values() if now - w.last_arrival > self.max_seconds]
        return [c for w in idle for c in self._close(w, "time")]

    def oldest_needed(self) -> dict[Place, int]:
        """Per partition, the first offset an open window still holds."""
        needed: dict[Place, int] = {}
        for w in self._open.values():
            needed[w.place] = min(needed.get(w.place, w.first_offset), w.first_offset)
        return needed

    def _close(self, w: _OpenWindow, how: Literal["count", "time"]) -> list[ClosedWindow]:
        del self._open[w.sensor_id]
        if len(w.rows) < self.min_size:
            self.discarded += 1
            return []
        return [
            ClosedWindow(
                sensor_id=w.sensor_id,
                start=w.start,
                end=w.end,
                values=np.asarray(w.rows, dtype="float64"),
                closed_by=how,
                first_reading_id=w.first_reading_id,
                last_reading_id=w.last_reading_id,
            )
        ]
