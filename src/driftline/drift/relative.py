"""The baseline basis: windows and reference compared relative to each sensor's baseline.

A fleet runs pumps at many operating points. Compared on raw levels, a new pump at another
operating point looks drifted while it is normal for itself, and a wearing pump is judged
against the fleet rather than against itself. On this basis every value is taken relative to
its own sensor's baseline (``SensorBaseline.standardise``: (x - mean) / std per measurement,
the feature the anomaly models use), the window's and the reference's alike, and the
per-feature tests of the raw basis run on those. Pure logic.

- A window's sensor is judged against its baseline from ``lookup`` (the drift service's: the
  champion bundle's baselines, else the baseline store, as serving looks them up). Without
  one, the window is not compared (``baseline: pending``, no features, drift share 0): never
  against another sensor's normal. A stuck sensor is still reported (``flatlined``).
- Each reference sensor (its ``sensor_id`` column) is taken relative to its baseline from
  ``lookup``, else to its own first ``baseline_readings`` rows (the reference is known-normal
  data), or its first quarter when it has fewer (as training does). A reference without
  sensor ids is one sensor's readings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from driftline.anomaly.baseline import SensorBaseline
from driftline.core.errors import ConfigurationError
from driftline.core.records import DriftEvent
from driftline.drift.detector import FeatureTests, window_event
from driftline.drift.reference import Reference
from driftline.drift.windows import ClosedWindow

BaselineLookup = Callable[[str], SensorBaseline | None]
MIN_OWN_BASELINE = 20  # fewer rows than this make no baseline of a reference sensor
PENDING = "pending"
READY = "ready"


def covers(baseline: SensorBaseline, features: list[str]) -> bool:
    """The baseline has every feature (a baseline of other measurements is not this normal)."""
    return set(features) <= set(baseline.measurements)


def relative(baseline: SensorBaseline, features: list[str], values: np.ndarray) -> np.ndarray:
    """``values`` (rows x ``features``) in units of the sensor's normal: (x - mean) / std."""
    index = [baseline.measurements.index(f) for f in features]
    mean = np.asarray(baseline.mean)[index]
    scale = baseline.scale()[index]
    return (np.asarray(values, dtype="float64") - mean) / scale


def own_baseline(values: np.ndarray, features: list[str], count: int) -> SensorBaseline | None:
    """The baseline of a reference sensor's first ``count`` rows (its first quarter when it
    has fewer, as training does), or None when that is under ``MIN_OWN_BASELINE`` rows."""
    import pandas as pd

    from driftline.anomaly.baseline import from_first_readings

    rows = count if len(values) >= count else len(values) // 4
    if rows < MIN_OWN_BASELINE:
        return None
    frame = pd.DataFrame(values, columns=features)
    return from_first_readings(frame, "reference", features, rows)


@dataclass(frozen=True)
class RelativeReference:
    values: np.ndarray  # rows x features, each row relative to its sensor's baseline
    sensors: int  # reference sensors taken relative to a baseline
    own: int  # of them, how many to their own first rows (no baseline found)
    skipped: int  # reference sensors with too few rows for a baseline of their own


def relative_reference(
    reference: Reference, lookup: BaselineLookup, baseline_readings: int
) -> RelativeReference:
    features = reference.features
    groups: dict[str, np.ndarray]
    if reference.sensors is None:
        groups = {"": reference.values}
    else:
        groups = {
            str(s): reference.values[reference.sensors == s] for s in np.unique(reference.sensors)
        }
    parts, own, skipped = [], 0, 0
    for sensor, values in groups.items():
        baseline = lookup(sensor) if sensor else None
        if baseline is None or not covers(baseline, features):
            baseline = own_baseline(values, features, baseline_readings)
            if baseline is None:
                skipped += 1
                continue
            own += 1
        parts.append(relative(baseline, features, values))
    if not parts or sum(len(p) for p in parts) < 30:
        raise ConfigurationError(
            f"reference {reference.source}: too few rows relative to a baseline "
            f"({sum(len(p) for p in parts)}) for the baseline basis"
        )
    return RelativeReference(np.vstack(parts), len(parts), own, skipped)


class BaselineDriftDetector:
    """Compares a window relative to its sensor's baseline with the reference relative to
    its sensors' baselines (the same tests and decision rule as ``DriftDetector``)."""

    def __init__(
        self,
        reference: Reference,
        lookup: BaselineLookup,
        stattest: str,
        threshold: float,
        share_threshold: float,
        baseline_readings: int,
    ) -> None:
        self.reference = reference
        self.lookup = lookup
        self.share_threshold = share_threshold
        self.relative = relative_reference(reference, lookup, baseline_readings)
        self.feature_tests = FeatureTests(
            reference.features, self.relative.values, stattest, threshold
        )

    def compare(self, window: ClosedWindow) -> DriftEvent:
        features = self.reference.features
        found = self.lookup(window.sensor_id)
        baseline = found if found is not None and covers(found, features) else None
        flatlined = self.feature_tests.flatlined(window.values)  # stuck: whatever its normal
        if baseline is None:
            results, state, version = [], PENDING, None
        else:
            results = self.feature_tests.run(relative(baseline, features, window.values))
            state, version = READY, baseline.version
        reference_id = self.reference.reference_id
        return window_event(
            window,
            reference_id,
            results,
            flatlined,
            self.share_threshold,
            id_key=f"{reference_id}|baseline:{version or PENDING}",
            basis="baseline",
            baseline=state,
            baseline_version=version,
        )
