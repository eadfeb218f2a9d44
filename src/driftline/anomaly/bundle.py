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
from driftline.anomaly.batched import causal_means_at, relative_features_of
from driftline.anomaly.commissioning import Commissioning, baseline_of
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
    model: AnomalyModel, baselines: Sequence[SensorBaseline], features: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Unsmoothed scores of the stacked feature rows of several sensors (``rows[i]`` of sensor
    ``i``, judged against ``baselines[i]``). A booster scores them all in one call (a call costs
    milliseconds whatever its size), through ``inplace_predict``: the probabilities of
    ``predict_proba`` without its per-call checks. A detector is each baseline's own."""
    if model.booster is not None:
        if not len(features):
            return np.empty(0)
        return np.asarray(model.booster.get_booster().inplace_predict(features))
    parts = np.split(features, np.cumsum(rows)[:-1])
    scores = [model.raw_scores(b, f) for b, f in zip(baselines, parts, strict=True)]
    return np.concatenate(scores) if scores else np.empty(0)


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
        on_baseline: Callable[[SensorBaseline], SensorBaseline] | None = None,
    ) -> None:
        self.bundle = bundle
        self.lookup = lookup
        self.on_baseline = on_baseline
        # Sensors without a baseline: their first valid readings, until there are enough.
        self._commissioning = (
            Commissioning(bundle.measurements, baseline_readings, max_sensors)
            if baseline_readings is not None
            else None
        )
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
                if self._commissioning is not None:
                    self._commissioning.forget(sensor)
        return found

    def score(self, readings: Sequence[ValidReading]) -> list[Scored]:
        measurements = self.bundle.measurements
        stamps = np.array([epoch_ns(r.ts) for r in readings], dtype="int64")
        values = np.array(
            [[r.values.get(m, np.nan) for m in measurements] for r in readings], dtype="float64"
        ).reshape(len(readings), len(measurements))
        return self.score_columns([r.sensor_id for r in readings], stamps, values)

    def score_columns(
        self, sensor_ids: Sequence[str], stamps: np.ndarray, values: np.ndarray
    ) -> list[Scored]:
        """``score`` of readings given as columns: each one's sensor, its ts (int64 ns since
        the epoch, (n,)) and its values ((n, the bundle's measurements), NaN where missing).

        The features of every sensor with a baseline come from one pass over all of them
        (``driftline.anomaly.batched``), then one model call and one smoothing pass."""
        n = len(sensor_ids)
        code_of: dict[str, int] = {}
        codes = np.fromiter(
            (code_of.setdefault(s, len(code_of)) for s in sensor_ids), dtype="int64", count=n
        )
        sensors = list(code_of)
        # The readings by sensor, then ts; one row per (sensor, ts) goes to the history, the
        # first of a ts repeated within the call.
        order = np.lexsort((stamps, codes))
        sorted_codes, sorted_ts = codes[order], stamps[order]
        first = np.ones(n, dtype=bool)
        first[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (sorted_ts[1:] != sorted_ts[:-1])
        kept = order[first]
        cut = np.cumsum(np.bincount(codes[kept], minlength=len(sensors)))[:-1]
        new_ts, new_values = np.split(stamps[kept], cut), np.split(values[kept], cut)
        new = {s: (new_ts[i], new_values[i]) for i, s in enumerate(sensors)}
        merged = self.recent.merge(new)
        of_sensor = np.split(order, np.cumsum(np.bincount(codes, minlength=len(sensors)))[:-1])

        model = self.bundle.model
        smooth = model.spec.smooth
        # Per sensor with a baseline: its rows from the first one a new reading's smoothed
        # score needs (``tail``), and where each of its readings is among them.
        series, baselines, tails, at, chosen = [], [], [], [], []
        offset = 0
        for i, sensor in enumerate(sensors):
            baseline = self.baseline(sensor) or self._collect(sensor, *new[sensor])
            if baseline is None:
                continue
            ts_all, values_all = merged[sensor]  # what was held and the new, in ts order
            where = np.searchsorted(ts_all, stamps[of_sensor[i]])  # ascending: by ts
            lo = max(int(where[0]) - smooth + 1, 0)
            series.append(values_all)
            baselines.append(baseline)
            tails.append(len(values_all) - lo)
            at.append(where - lo + offset)
            chosen.append(i)
            offset += tails[-1]
        out: list[Scored] = [Scored(None, PENDING, None)] * n
        if not chosen:
            return out
        features = relative_features_of(series, baselines, model.spec.recipe, tails)
        rows = np.array(tails, dtype="int64")
        raw = _raw_scores(model, baselines, features, rows)
        positions = np.concatenate(at)
        probabilities = alarm_probability(
            causal_means_at(raw, rows, positions, smooth), model.spec.threshold
        ).tolist()
        done = 0
        for i, baseline in zip(chosen, baselines, strict=True):
            index = of_sensor[i]
            mine = probabilities[done : done + len(index)]
            done += len(index)
            # A baseline completed here: its own readings stay pending, as they are in training.
            upto = self._completed_at.get(sensors[i])
            version = baseline.version
            for reading, p in zip(index.tolist(), mine, strict=True):
                if upto is None or stamps[reading] > upto:
                    out[reading] = Scored(p, READY, version)
        return out

    def _collect(self, sensor: str, ts: np.ndarray, values: np.ndarray) -> SensorBaseline | None:
        """Add a pending sensor's new valid readings to its commissioning period; its baseline
        once that holds ``baseline_readings``: the one ``on_baseline`` stored (this one, or one
        completed first elsewhere, which it returns)."""
        if self._commissioning is None:
            return None
        period = self._commissioning.add(sensor, ts, values)
        if period is None:
            return None
        stamps, rows = period
        baseline = baseline_of(sensor, self.bundle.measurements, stamps, rows)
        if self.on_baseline is not None:
            baseline = self.on_baseline(baseline)
        self._found[sensor] = baseline
        self._completed_at[sensor] = int(stamps[-1])
        return baseline
