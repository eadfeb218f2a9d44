"""A deployable anomaly model: the ``AnomalyModel`` and the per-sensor baselines it was trained
with, saved, registered and served as one.

Training, evaluation, promotion and serving all score through it, so none of them needs to
know the family. A sensor is scored only against its own baseline: the bundle's, else one an
operator set since (``BaselineStore``), else none yet: its readings are ``pending`` and get no
score (never one from another sensor's normal).

The served number is ``alarm_probability``: the model's score relative to its decision
threshold, ``score / (score + threshold)``, in [0, 1] and exactly 0.5 at the threshold, so the
serving threshold (0.5) and the promotion metrics at 0.5 alarm where the model's own threshold
does. It ranks readings as the score does; it is a probability only for the xgboost family.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from driftline.anomaly.baseline import BaselineError, SensorBaseline, from_first_readings
from driftline.anomaly.baseline_store import BaselineStore
from driftline.anomaly.features import relative_features
from driftline.anomaly.model import AnomalyModel
from driftline.core.records import ValidReading, epoch_ns
from driftline.serving.history import HistoryStore, MemoryHistory
from driftline.validation.schema import SENSOR_ID, TS

MODEL_DIR = "model"
BASELINES_DIR = "baselines"
MANIFEST = "bundle.json"
READY = "ready"
PENDING = "pending"

BaselineLookup = Callable[[str], SensorBaseline | None]


class RecentReadings(HistoryStore, Protocol):
    """Where a scorer keeps each sensor's last readings: this process (``MemoryHistory``) or
    Redis, shared by serving replicas (``RedisHistory``); it keeps ``held`` of each."""

    held: int


def alarm_probability(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Scores (>= 0, the higher the more anomalous) as values in [0, 1], 0.5 at ``threshold``."""
    s = np.maximum(np.nan_to_num(np.asarray(scores, dtype="float64"), nan=0.0), 0.0)
    t = max(float(threshold), 1e-12)
    return s / (s + t)


@dataclass(frozen=True)
class Scored:
    """One reading's outcome: a probability against its sensor's baseline, or pending."""

    probability: float | None
    baseline: str  # READY or PENDING
    baseline_version: str | None


@dataclass
class ModelBundle:
    model: AnomalyModel
    baselines: dict[str, SensorBaseline]
    measurements: tuple[str, ...]

    @property
    def family(self) -> str:
        return self.model.spec.family

    @property
    def baselines_version(self) -> str:
        """One name for the whole set: the sorted sensor:version pairs, hashed."""
        import hashlib

        text = ",".join(f"{s}:{b.version}" for s, b in sorted(self.baselines.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        self.model.save(directory / MODEL_DIR)
        store = BaselineStore(directory / BASELINES_DIR)
        for baseline in self.baselines.values():
            store.save(baseline)
        manifest = {"measurements": list(self.measurements), "sensors": sorted(self.baselines)}
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return directory

    @classmethod
    def load(cls, directory: Path) -> ModelBundle:
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST).read_text())
        baselines = {b.sensor_id: b for b in BaselineStore(directory / BASELINES_DIR).all()}
        return cls(
            AnomalyModel.load(directory / MODEL_DIR),
            baselines,
            tuple(manifest["measurements"]),
        )

    def frame_scores(
        self, frame: pd.DataFrame, fallback_readings: int | None = None
    ) -> tuple[np.ndarray, list[str | None]]:
        """Per row of ``frame`` (sensor_id, ts, the measurements; any order), its alarm
        probability and the version of the baseline it was judged against. A sensor without a
        baseline in the bundle gets one from its first ``fallback_readings`` valid rows here
        (its own commissioning period); without that either, NaN and None (pending)."""
        out = np.full(len(frame), np.nan)
        versions: list[str | None] = [None] * len(frame)
        positions = pd.RangeIndex(len(frame))
        for sensor, rows in frame.reset_index(drop=True).groupby(SENSOR_ID, sort=False):
            rows = rows.sort_values(TS, kind="mergesort") if TS in rows else rows
            baseline = self.baselines.get(str(sensor))
            if baseline is None and fallback_readings is not None:
                baseline = from_first_readings(
                    rows, str(sensor), list(self.measurements), fallback_readings
                )
            if baseline is None:
                continue
            values = rows[list(self.measurements)].to_numpy(dtype="float64")
            scores = self.model.score(baseline, values)
            index = positions[rows.index]
            out[index] = alarm_probability(scores, self.model.spec.threshold)
            for i in index:
                versions[i] = baseline.version
        return out, versions


def _raw_scores(
    model: AnomalyModel, items: list[tuple[SensorBaseline, np.ndarray]]
) -> list[np.ndarray]:
    """Unsmoothed scores of each sensor's feature rows. A booster scores all sensors' rows in
    one call (a call costs milliseconds whatever its size), through ``inplace_predict``: the
    probabilities of ``predict_proba`` without its per-call checks."""
    if model.booster is None or not items:
        return [model.raw_scores(baseline, features) for baseline, features in items]
    stacked = np.vstack([features for _, features in items])
    scores = np.asarray(model.booster.get_booster().inplace_predict(stacked))
    return np.split(scores, np.cumsum([len(f) for _, f in items])[:-1])


class OnlineScorer:
    """Scores readings as they arrive, each against its sensor's baseline, from the last
    readings of each sensor it holds (enough for the recipe's longest window and the score's
    smoothing: once that many are held, a score is what the whole series would give)."""

    def __init__(
        self,
        bundle: ModelBundle,
        lookup: BaselineLookup | None = None,
        recent: RecentReadings | None = None,
        max_sensors: int = 20_000,
        baseline_readings: int | None = None,
        on_baseline: Callable[[SensorBaseline], None] | None = None,
    ) -> None:
        self.bundle = bundle
        self.lookup = lookup
        self.baseline_readings = baseline_readings
        self.on_baseline = on_baseline
        self.max_sensors = max_sensors
        # Sensors without a baseline: their first valid readings, until there are enough.
        self._collecting: dict[str, dict[int, np.ndarray]] = {}
        self._completed_at: dict[str, int] = {}  # ts (ns) of a completed baseline's last row
        spec = bundle.model.spec
        self.needed = spec.recipe.history() + spec.smooth - 1
        # A recent-readings buffer handed over from the model replaced keeps its history.
        self.recent: RecentReadings = (
            recent if recent is not None else MemoryHistory(self.needed, max_sensors)
        )
        self.recent.held = max(self.recent.held, self.needed)
        self._found: dict[str, SensorBaseline] = {}

    def adopt(self, recent: RecentReadings) -> None:
        """Carry on from the readings another scorer held (the model this one replaces)."""
        recent.held = max(recent.held, self.needed)
        self.recent = recent

    def baseline(self, sensor: str) -> SensorBaseline | None:
        found = self.bundle.baselines.get(sensor) or self._found.get(sensor)
        if found is None and self.lookup is not None:
            try:
                found = self.lookup(sensor)
            except BaselineError:
                found = None
            if found is not None and found.measurements != self.bundle.measurements:
                found = None  # a baseline of other measurements is not this model's normal
            if found is not None:
                self._found[sensor] = found
        return found

    def score(self, readings: Sequence[ValidReading]) -> list[Scored]:
        measurements = self.bundle.measurements
        stamps = np.array([epoch_ns(r.ts) for r in readings], dtype="int64")
        values = np.array(
            [[r.values.get(m, np.nan) for m in measurements] for r in readings], dtype="float64"
        ).reshape(len(readings), len(measurements))
        by_sensor: dict[str, list[int]] = {}
        for i, r in enumerate(readings):
            by_sensor.setdefault(r.sensor_id, []).append(i)
        out: list[Scored] = [Scored(None, PENDING, None)] * len(readings)
        new: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for sensor, index in by_sensor.items():
            # One row per ts (a repeat within the call shares the first one's values).
            ts, first = np.unique(stamps[index], return_index=True)
            new[sensor] = (ts, values[np.asarray(index)[first]])
        merged = self.recent.merge(new)
        model = self.bundle.model
        smooth = model.spec.smooth
        # Per sensor with a baseline: its feature rows from the first one a new reading's
        # smoothed score needs; then one model call for the rows of every sensor.
        work = []
        for sensor, index in by_sensor.items():
            baseline = self.baseline(sensor) or self._collect(sensor, *new[sensor])
            if baseline is None:
                continue
            ts_all, values_all = merged[sensor]  # what was held and the new, in ts order
            where = np.searchsorted(ts_all, stamps[index])
            lo = max(int(where.min()) - smooth + 1, 0)
            recipe = model.spec.recipe
            features = relative_features(values_all, baseline, recipe, len(values_all) - lo)
            work.append((sensor, index, baseline, where - lo, features))
        raw = _raw_scores(model, [(b, f) for _, _, b, _, f in work])
        threshold = model.spec.threshold
        for (sensor, index, baseline, where, _), sensor_raw in zip(work, raw, strict=True):
            probabilities = alarm_probability(model.smoothed(sensor_raw), threshold)
            # A baseline completed here: its own readings stay pending, as they are in training.
            upto = self._completed_at.get(sensor)
            for i, at in zip(index, where, strict=True):
                if upto is None or stamps[i] > upto:
                    out[i] = Scored(float(probabilities[at]), READY, baseline.version)
        return out

    def _collect(self, sensor: str, ts: np.ndarray, values: np.ndarray) -> SensorBaseline | None:
        """Add a pending sensor's new valid readings to its commissioning period; its baseline
        once that holds ``baseline_readings`` (handed to ``on_baseline`` to be stored)."""
        if self.baseline_readings is None:
            return None
        held = self._collecting.setdefault(sensor, {})
        for t, row in zip(ts.tolist(), values, strict=True):
            if np.isfinite(row).all() and len(held) < self.baseline_readings:
                held.setdefault(int(t), row)
        while len(self._collecting) > self.max_sensors:
            del self._collecting[next(iter(self._collecting))]
        if len(held) < self.baseline_readings:
            return None
        stamps = sorted(held)
        frame = pd.DataFrame(np.array([held[t] for t in stamps]), columns=self.bundle.measurements)
        frame[TS] = pd.to_datetime(stamps, unit="ns", utc=True)
        baseline = from_first_readings(
            frame, sensor, list(self.bundle.measurements), self.baseline_readings
        )
        if baseline is None:
            return None
        del self._collecting[sensor]
        self._found[sensor] = baseline
        self._completed_at[sensor] = stamps[-1]
        if self.on_baseline is not None:
            self.on_baseline(baseline)
        return baseline
