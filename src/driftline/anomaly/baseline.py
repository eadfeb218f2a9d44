"""Per-sensor baselines: statistics of a sensor's own normal readings.

A baseline is learned from a sensor's commissioning period (its first ``N`` valid readings,
``Settings.baseline_readings``) or from a period an operator names, and may be extended by
readings operators labelled ``normal`` in Label Studio (``extend``). It keeps the readings
themselves (a few hundred rows) beside their summary statistics, so every model family can
derive what it needs (a PCA, an MSET memory, the spread of a rolling mean) from the one object
that training, serving and the drift service share. It is a frozen, versioned pydantic record:
``to_json``/``from_json`` round-trip it exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from driftline.core.errors import DriftlineError

SCHEMA_VERSION = 1
BaselineSource = Literal["first-readings", "period", "labelled-normal"]


class BaselineError(DriftlineError):
    """A baseline cannot be built from the readings given."""


class SensorBaseline(BaseModel):
    """One sensor's normal: its baseline readings and their per-measurement statistics."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    sensor_id: str
    measurements: tuple[str, ...]
    source: BaselineSource
    start: datetime | None = None
    end: datetime | None = None
    # The spans its readings were taken from, when more than start..end says (a baseline
    # extended by periods labelled normal); empty: start..end.
    periods: tuple[tuple[datetime, datetime], ...] = ()
    readings: tuple[tuple[float, ...], ...] = Field(repr=False)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    median: tuple[float, ...]
    mad: tuple[float, ...]

    @property
    def count(self) -> int:
        return len(self.readings)

    def spans(self) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """The spans (UTC) its readings were taken from, in time order; none when unknown."""
        if self.periods:
            return sorted((_utc(a), _utc(b)) for a, b in self.periods)
        if self.start is not None and self.end is not None:
            return [(_utc(self.start), _utc(self.end))]
        return []

    @cached_property
    def version(self) -> str:
        """Content hash: equal readings and measurements give the same version."""
        digest = hashlib.sha256(self.values().tobytes())
        digest.update("\x1f".join(self.measurements).encode())
        return digest.hexdigest()[:12]

    def values(self) -> np.ndarray:
        """The baseline readings, (count, measurements), in time order (a read-only array,
        made once: serving asks for it on every batch)."""
        return self._values

    @cached_property
    def _values(self) -> np.ndarray:
        values = np.asarray(self.readings, dtype="float64").reshape(-1, len(self.measurements))
        values.flags.writeable = False
        return values

    def scale(self) -> np.ndarray:
        """Per-measurement spread for standardising: the std, or where a measurement was
        constant over the baseline, a small fraction of its level (never zero)."""
        std = np.asarray(self.std)
        fallback = np.maximum(np.abs(np.asarray(self.mean)) * 1e-3, 1e-9)
        return np.where(std > 0, std, fallback)

    def standardise(self, values: np.ndarray) -> np.ndarray:
        """(values - mean) / scale per measurement: readings in units of this sensor's normal."""
        return (np.asarray(values, dtype="float64") - np.asarray(self.mean)) / self.scale()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update``; what is cached of the readings (version, array) is not
        carried over, so it cannot describe other readings."""
        copied = super().model_copy(update=update, deep=deep)
        for name in ("version", "_values"):
            copied.__dict__.pop(name, None)
        return copied

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> SensorBaseline:
        baseline = cls.model_validate_json(text)
        if baseline.schema_version != SCHEMA_VERSION:
            raise BaselineError(f"baseline schema version {baseline.schema_version} unknown")
        return baseline


def valid_rows(frame: pd.DataFrame, measurements: list[str]) -> pd.DataFrame:
    """Rows whose every measurement is a finite number (what a baseline may learn from)."""
    missing = [m for m in measurements if m not in frame.columns]
    if missing:
        raise BaselineError(f"readings lack measurements {missing}")
    values = frame[measurements].apply(pd.to_numeric, errors="coerce").to_numpy("float64")
    return frame[np.isfinite(values).all(axis=1)]


def _build(
    sensor_id: str,
    rows: pd.DataFrame,
    measurements: list[str],
    source: BaselineSource,
    ts: str,
) -> SensorBaseline:
    values = rows[measurements].to_numpy(dtype="float64")
    if len(values) < 2:
        raise BaselineError(f"sensor {sensor_id}: {len(values)} valid readings, need at least 2")
    median = np.median(values, axis=0)
    times = pd.to_datetime(rows[ts], utc=True) if ts in rows.columns else None
    return SensorBaseline(
        sensor_id=sensor_id,
        measurements=tuple(measurements),
        source=source,
        start=times.iloc[0].to_pydatetime() if times is not None else None,
        end=times.iloc[-1].to_pydatetime() if times is not None else None,
        readings=tuple(tuple(float(v) for v in row) for row in values),
        mean=tuple(float(v) for v in values.mean(axis=0)),
        std=tuple(float(v) for v in values.std(axis=0, ddof=1)),
        median=tuple(float(v) for v in median),
        mad=tuple(float(v) for v in np.median(np.abs(values - median), axis=0)),
    )


def from_first_readings(
    frame: pd.DataFrame,
    sensor_id: str,
    measurements: list[str],
    count: int,
    ts: str = "ts",
) -> SensorBaseline | None:
    """The baseline of the sensor's first ``count`` valid readings (in ``ts`` order when the
    frame has that column), or None while it has fewer: its baseline is still pending."""
    if count < 2:
        raise BaselineError(f"a baseline needs at least 2 readings, got {count}")
    rows = valid_rows(frame, measurements)
    if ts in rows.columns:
        rows = rows.sort_values(ts, kind="mergesort")
    if len(rows) < count:
        return None
    return _build(sensor_id, rows.iloc[:count], measurements, "first-readings", ts)


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def from_period(
    frame: pd.DataFrame,
    sensor_id: str,
    measurements: list[str],
    start: datetime,
    end: datetime,
    ts: str = "ts",
) -> SensorBaseline:
    """The baseline of the sensor's valid readings with ``start <= ts <= end`` (an operator
    names a period known to be normal)."""
    if _utc(end) <= _utc(start):
        raise BaselineError(f"baseline period ends ({end}) before it starts ({start})")
    times = pd.to_datetime(frame[ts], utc=True)
    inside = frame[(times >= _utc(start)) & (times <= _utc(end))]
    rows = valid_rows(inside, measurements).sort_values(ts, kind="mergesort")
    return _build(sensor_id, rows, measurements, "period", ts)


def extend(
    base: SensorBaseline | None,
    frame: pd.DataFrame,
    sensor_id: str,
    measurements: list[str],
    limit: int,
    ts: str = "ts",
    periods: list[tuple[datetime, datetime]] | None = None,
) -> tuple[SensorBaseline, int]:
    """``base`` extended with the valid readings of ``frame`` (readings of the sensor labelled
    normal, from ``periods``) that lie outside the spans it covers already, at most ``limit`` of
    them, evenly spread over time; without a base, the baseline of those readings. Returns the
    baseline (readings before its start first, then its own, then the later ones) and how
    many readings were added. It covers its spans and ``periods`` (default: the first to the
    last reading added), so a period added once is not added again."""
    if base is not None and list(base.measurements) != measurements:
        raise BaselineError(
            f"sensor {sensor_id}: baseline measurements {list(base.measurements)} are not the "
            f"profile's {measurements}"
        )
    if limit < 1:
        raise BaselineError(f"may add at most {limit} readings: nothing to extend with")
    rows = valid_rows(frame, measurements).sort_values(ts, kind="mergesort")
    times = pd.to_datetime(rows[ts], utc=True)
    covered = base.spans() if base is not None else []
    if covered:
        inside = np.zeros(len(rows), dtype=bool)
        for first, last in covered:
            inside |= ((times >= first) & (times <= last)).to_numpy()
        rows, times = rows[~inside], times[~inside]
    if periods is None:
        periods = [(times.iloc[0], times.iloc[-1])] if len(times) else []
    if len(rows) > limit:
        keep = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
        rows, times = rows.iloc[keep], times.iloc[keep]
    if base is not None and rows.empty:
        return base, 0
    added = rows[measurements].to_numpy(dtype="float64")
    if base is None or base.start is None:
        values = added
    else:
        before = (times < _utc(base.start)).to_numpy()
        values = np.vstack([added[before], base.values(), added[~before]])
    if len(values) < 2:
        raise BaselineError(f"sensor {sensor_id}: {len(values)} valid readings, need at least 2")
    spans = _merged(covered + [(_utc(a), _utc(b)) for a, b in periods])
    median = np.median(values, axis=0)
    return (
        SensorBaseline(
            sensor_id=sensor_id,
            measurements=tuple(measurements),
            source="labelled-normal",
            start=spans[0][0].to_pydatetime() if spans else None,
            end=max(b for _, b in spans).to_pydatetime() if spans else None,
            periods=tuple((a.to_pydatetime(), b.to_pydatetime()) for a, b in spans),
            readings=tuple(tuple(float(v) for v in row) for row in values),
            mean=tuple(float(v) for v in values.mean(axis=0)),
            std=tuple(float(v) for v in values.std(axis=0, ddof=1)),
            median=tuple(float(v) for v in median),
            mad=tuple(float(v) for v in np.median(np.abs(values - median), axis=0)),
        ),
        len(added),
    )


def _merged(
    spans: list[tuple[pd.Timestamp, pd.Timestamp]],
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Overlapping spans joined, in time order."""
    out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for first, last in sorted(spans):
        if out and first <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out
