"""A new sensor's commissioning period: its first ``count`` valid readings, collected as they
arrive until there are enough for its baseline.

Serving and the drift service both collect (the same readings reach both), and both store what
they complete with ``BaselineStore.complete``: the first stored wins and both then use that
one. Collecting is cheap per reading: a call adds a sensor's readings as arrays (serving's
batch columns, the drift service's batch), and the pandas and pydantic work of building the
baseline happens once per sensor (``baseline_of``; the drift service runs it off its event
loop).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import orjson
import pandas as pd
from prometheus_client import Counter

from driftline.anomaly.baseline import BaselineError, SensorBaseline
from driftline.anomaly.baseline_store import BaselineStore


class Commissioning:
    """Pending sensors' valid readings, (ts in int64 ns, values in ``measurements`` order),
    at most ``max_sensors`` of them (the oldest collection is dropped beyond that)."""

    def __init__(self, measurements: Sequence[str], count: int, max_sensors: int = 20_000) -> None:
        if count < 2:
            raise BaselineError(f"a baseline needs at least 2 readings, got {count}")
        self.measurements = tuple(measurements)
        self.count = count
        self.max_sensors = max_sensors
        self._chunks: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self._held: dict[str, int] = {}  # valid rows held, repeated ts counted until compacted

    def __contains__(self, sensor: str) -> bool:
        return sensor in self._chunks

    @property
    def sensors(self) -> int:
        return len(self._chunks)

    def add(
        self, sensor: str, stamps: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Add readings of ``sensor`` ((n,) ts, (n, measurements) values; rows with a missing
        or non-finite value are not valid and are skipped). Once it holds ``count`` readings of
        distinct ts, its commissioning period (the first ``count`` to arrive, in ts order) is
        returned and the sensor is no longer collected; until then None."""
        values = np.asarray(values, dtype="float64").reshape(len(stamps), len(self.measurements))
        valid = np.isfinite(values).all(axis=1)
        if not valid.any():
            return None
        chunks = self._chunks.setdefault(sensor, [])
        chunks.append((np.asarray(stamps, dtype="int64")[valid], values[valid]))
        self._held[sensor] = self._held.get(sensor, 0) + int(valid.sum())
        while len(self._chunks) > self.max_sensors:
            self.forget(next(iter(self._chunks)))
        if self._held.get(sensor, 0) < self.count:
            return None
        ts = np.concatenate([c[0] for c in chunks])
        rows = np.concatenate([c[1] for c in chunks])
        _, first = np.unique(ts, return_index=True)  # a ts repeated: its first arrival
        kept = np.sort(first)[: self.count]
        if len(kept) < self.count:
            self._chunks[sensor] = [(ts[kept], rows[kept])]
            self._held[sensor] = len(kept)
            return None
        self.forget(sensor)
        order = kept[np.argsort(ts[kept], kind="stable")]
        return ts[order], rows[order]

    def forget(self, sensor: str) -> None:
        """Stop collecting ``sensor`` (its baseline was found elsewhere, or completed)."""
        self._chunks.pop(sensor, None)
        self._held.pop(sensor, None)


def baseline_of(
    sensor: str, measurements: Sequence[str], stamps: np.ndarray, values: np.ndarray
) -> SensorBaseline:
    """The commissioning baseline of a period ``Commissioning.add`` returned: what
    ``from_first_readings`` makes of the same rows, in an eighth of its time (no DataFrame,
    and the record validated from JSON, which pydantic does far faster than from tuples)."""
    if len(values) < 2:
        raise BaselineError(f"sensor {sensor}: {len(values)} valid readings, need at least 2")
    # Column-major, as a DataFrame's columns are: the sums then round as from_first_readings'.
    columns = np.asfortranarray(values, dtype="float64")
    median = np.median(columns, axis=0)
    first, last = (pd.Timestamp(int(t), tz="UTC").isoformat() for t in (stamps[0], stamps[-1]))
    record = {
        "sensor_id": sensor,
        "measurements": list(measurements),
        "source": "first-readings",
        "start": first,
        "end": last,
        "readings": np.asarray(values, dtype="float64").tolist(),
        "mean": columns.mean(axis=0).tolist(),
        "std": columns.std(axis=0, ddof=1).tolist(),
        "median": median.tolist(),
        "mad": np.median(np.abs(columns - median), axis=0).tolist(),
    }
    return SensorBaseline.model_validate_json(orjson.dumps(record))


def store_completed(
    store: BaselineStore, baseline: SensorBaseline, outcomes: Counter, log: logging.Logger
) -> SensorBaseline:
    """The sensor's baseline once ``baseline`` is completed: the one stored first (this one,
    or another service's), counted in ``outcomes`` by outcome. If the store cannot be written,
    ``baseline`` all the same: the service goes on judging the sensor by it."""
    sensor = baseline.sensor_id[:100]
    try:
        stored = store.complete(baseline)
    except (OSError, BaselineError, ValueError) as exc:
        outcomes.labels("error").inc()
        log.warning("sensor %s: baseline not stored: %s", sensor, exc)
        return baseline
    mine = stored.version == baseline.version
    outcomes.labels("stored" if mine else "existing").inc()
    log.info(
        "sensor %s: baseline %s complete%s",
        sensor,
        stored.version,
        "" if mine else " (stored first by another service)",
    )
    return stored
