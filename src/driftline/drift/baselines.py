"""Where the drift service finds each sensor's baseline: the lookup serving uses.

The champion bundle's baselines come with its reference: promotion writes them beside the
reference file (``<reference>.baselines/``, one JSON per sensor, ``BaselineStore`` layout;
``driftline.training.promote``). A sensor the bundle has none of is looked up in the
baseline store (``<data_dir>/baselines``: set by an operator, or completed by serving or
by this service), through ``StoredBaselines``: each sensor's entry is looked at again once it
is ``DRIFTLINE_DRIFT_BASELINE_REFRESH_SECONDS`` old (a stat; the file is read again only when it
changed), so a baseline set or completed elsewhere is used within that time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driftline.anomaly.baseline import BaselineError, SensorBaseline
from driftline.anomaly.baseline_store import BaselineStore
from driftline.anomaly.commissioning import Commissioning, baseline_of, store_completed
from driftline.core import metrics
from driftline.core.records import ValidReading, epoch_ns
from driftline.drift.relative import BaselineLookup, covers

log = logging.getLogger("drift")


def baselines_beside(reference_path: Path | str) -> Path:
    """The directory of the baselines that came with a model's reference file."""
    path = Path(reference_path)
    return path.with_name(f"{path.stem}.baselines")


def bundle_baselines(reference_path: Path | str) -> dict[str, SensorBaseline]:
    """The baselines beside the reference (none for a reference file of no model)."""
    try:
        return {b.sensor_id: b for b in BaselineStore(baselines_beside(reference_path)).all()}
    except (BaselineError, OSError, ValueError) as exc:
        log.warning("baselines beside %s not readable: %s", reference_path, exc)
        return {}


@dataclass
class _Entry:
    baseline: SensorBaseline | None
    mtime_ns: int | None  # of its file when read; None: there was none
    checked: float


class StoredBaselines:
    """The baseline store's baselines, each kept ``refresh_seconds`` before it is looked at
    again (a window would otherwise read and parse a sensor's JSON each time)."""

    def __init__(
        self,
        store: BaselineStore,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def get(self, sensor: str) -> SensorBaseline | None:
        now = self.clock()
        entry = self._entries.get(sensor)
        if entry is not None and now - entry.checked < self.refresh_seconds:
            return entry.baseline
        mtime = self._mtime(sensor)
        if entry is None or mtime != entry.mtime_ns:
            baseline = self.store.get(sensor) if mtime is not None else None
            entry = _Entry(baseline, mtime, now)
            self._entries[sensor] = entry
        entry.checked = now
        return entry.baseline

    def put(self, baseline: SensorBaseline) -> None:
        """The sensor's baseline as stored now (one this service completed, or found stored)."""
        sensor = baseline.sensor_id
        self._entries[sensor] = _Entry(baseline, self._mtime(sensor), self.clock())

    def _mtime(self, sensor: str) -> int | None:
        try:
            return self.store.path(sensor).stat().st_mtime_ns
        except FileNotFoundError:
            return None


def baseline_lookup(
    bundle: dict[str, SensorBaseline],
    store: StoredBaselines | BaselineStore,
    features: list[str],
) -> BaselineLookup:
    """The bundle's baseline of a sensor, else the store's; None: pending."""

    def lookup(sensor: str) -> SensorBaseline | None:
        found = bundle.get(sensor)
        if found is None:
            try:
                found = store.get(sensor)
            except (BaselineError, OSError, ValueError) as exc:
                log.warning("sensor %s: stored baseline not readable: %s", sensor[:100], exc)
                return None
        return found if found is not None and covers(found, features) else None

    return lookup


class BaselineCompletion:
    """The drift service's share of commissioning: pending sensors' valid readings are
    collected (``driftline.anomaly.commissioning``, as serving collects them), and a completed
    period's baseline is built and stored off the event loop (``complete``); the first stored
    wins, whoever stored it, and is the one used from then on."""

    def __init__(
        self, stored: StoredBaselines, features: list[str], count: int, max_sensors: int = 20_000
    ) -> None:
        self.stored = stored
        self.features = features
        self.commissioning = Commissioning(features, count, max_sensors)

    def add(
        self, readings: Sequence[ValidReading], lookup: BaselineLookup
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Collect the readings of sensors ``lookup`` has no baseline of; the commissioning
        periods this completed, (sensor, ts, values)."""
        pending: dict[str, list[ValidReading]] = {}
        ready: set[str] = set()
        for r in readings:
            sensor = r.sensor_id
            if sensor in ready:
                continue
            if sensor not in pending:
                if lookup(sensor) is not None:
                    ready.add(sensor)
                    self.commissioning.forget(sensor)
                    continue
                pending[sensor] = []
            pending[sensor].append(r)
        periods = []
        features = self.features
        for sensor, mine in pending.items():
            stamps = np.fromiter((epoch_ns(r.ts) for r in mine), dtype="int64", count=len(mine))
            values = np.array(
                [[r.values.get(f, np.nan) for f in features] for r in mine], dtype="float64"
            )
            period = self.commissioning.add(sensor, stamps, values)
            if period is not None:
                periods.append((sensor, *period))
        return periods

    async def complete(self, periods: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        if periods:
            await asyncio.to_thread(self._complete_all, periods)

    def _complete_all(self, periods: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        for sensor, stamps, values in periods:
            baseline = baseline_of(sensor, self.features, stamps, values)
            store, outcomes = self.stored.store, metrics.drift_baselines_completed
            self.stored.put(store_completed(store, baseline, outcomes, log))
