"""The drift service's baseline basis: windows and reference relative to each sensor's own
baseline (driftline.drift.relative), and where the service finds the baselines."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.baseline import SensorBaseline, from_first_readings
from driftline.anomaly.baseline_store import BaselineStore
from driftline.core.errors import ConfigurationError
from driftline.drift.baselines import baseline_lookup, baselines_beside, bundle_baselines
from driftline.drift.detector import DriftDetector
from driftline.drift.reference import Reference
from driftline.drift.relative import BaselineDriftDetector, relative_reference
from driftline.drift.windows import ClosedWindow
from tests.unit.factories import NOW

FEATURES = ["flow", "current", "pressure", "temperature", "vibration"]
LEVEL = np.array([30.0, 2.0, 1.0, 70.0, 0.03])
SPREAD = np.array([1.0, 0.05, 0.02, 0.5, 0.002])
BASELINE_ROWS = 400


def pump(seed: int, rows: int, level: np.ndarray = LEVEL, spread: np.ndarray = SPREAD):  # type: ignore[no-untyped-def]
    """A normal pump's readings: around ``level`` with ``spread``, slowly wandering."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(rows, len(FEATURES)))
    wander = np.cumsum(rng.normal(size=(rows, len(FEATURES))), axis=0) / np.sqrt(rows) * 0.3
    return level + spread * (noise + wander)


def baseline_of(sensor: str, values: np.ndarray) -> SensorBaseline:
    found = from_first_readings(
        pd.DataFrame(values, columns=FEATURES), sensor, FEATURES, BASELINE_ROWS
    )
    assert found is not None
    return found


def window(sensor: str, values: np.ndarray) -> ClosedWindow:
    return ClosedWindow(
        sensor_id=sensor,
        start=NOW,
        end=NOW + timedelta(seconds=len(values) - 1),
        values=values,
        closed_by="count",
        first_reading_id=f"{sensor}-first",
        last_reading_id=f"{sensor}-last",
    )


@pytest.fixture(scope="module")
def fleet() -> tuple[Reference, dict[str, SensorBaseline]]:
    """A reference of two pumps at the fleet's operating point, each with its baseline."""
    a, b = pump(1, 1500), pump(2, 1500)
    reference = Reference(
        "ref-fleet",
        FEATURES,
        np.vstack([a, b]),
        "fleet",
        np.array(["a"] * len(a) + ["b"] * len(b)),
    )
    return reference, {"a": baseline_of("a", a), "b": baseline_of("b", b)}


def detectors(reference: Reference, baselines: dict[str, SensorBaseline]):  # type: ignore[no-untyped-def]
    raw = DriftDetector(reference, "wasserstein", 2.0, 0.375)
    relative = BaselineDriftDetector(reference, baselines.get, "wasserstein", 2.0, 0.375, 400)
    return raw, relative


def test_a_pump_at_another_operating_point_is_drifted_on_raw_levels_only(fleet) -> None:  # type: ignore[no-untyped-def]
    reference, baselines = fleet
    # Flow x3, current x2, temperatures +10 and every spread doubled: a whole-sensor change.
    level = LEVEL * np.array([3.0, 2.0, 1.5, 1.0, 1.0]) + np.array([0, 0, 0, 10.0, 0])
    other = pump(7, BASELINE_ROWS + 300, level, SPREAD * 2.0)
    baselines = baselines | {"new": baseline_of("new", other)}
    raw, relative = detectors(reference, baselines)

    on_raw = raw.compare(window("new", other[BASELINE_ROWS:]))
    on_baseline = relative.compare(window("new", other[BASELINE_ROWS:]))

    assert on_raw.drifted and on_raw.basis == "raw" and on_raw.baseline is None
    assert not on_baseline.drifted, [f for f in on_baseline.features if f.drifted]
    assert on_baseline.basis == "baseline" and on_baseline.baseline == "ready"
    assert on_baseline.baseline_version == baselines["new"].version
    assert on_baseline.reference_id == reference.reference_id
    assert on_baseline.event_id != on_raw.event_id


def test_wear_relative_to_the_pumps_own_baseline_is_drift(fleet) -> None:  # type: ignore[no-untyped-def]
    reference, baselines = fleet
    readings = pump(8, BASELINE_ROWS + 300)
    baselines = baselines | {"worn": baseline_of("worn", readings)}
    worn = readings[BASELINE_ROWS:].copy()
    ramp = np.linspace(0.0, 8.0, len(worn))[:, None]  # up to 8 of its own standard deviations
    worn[:, [0, 1, 3, 4]] += ramp * SPREAD[[0, 1, 3, 4]]
    _, relative = detectors(reference, baselines)

    healthy = relative.compare(window("worn", readings[BASELINE_ROWS:]))
    wearing = relative.compare(window("worn", worn))

    assert not healthy.drifted
    assert wearing.drifted
    assert {f.feature for f in wearing.features if f.drifted} <= {
        "flow",
        "current",
        "temperature",
        "vibration",
    }


def test_a_sensor_without_a_baseline_is_pending_not_compared(fleet) -> None:  # type: ignore[no-untyped-def]
    reference, baselines = fleet
    _, relative = detectors(reference, baselines)
    far_away = pump(9, 300, LEVEL * 5.0)

    event = relative.compare(window("unknown", far_away))

    assert event.baseline == "pending" and event.baseline_version is None
    assert event.features == [] and event.drift_share == 0.0 and not event.drifted
    stuck = far_away.copy()
    stuck[:, 2] = stuck[0, 2]
    flat = relative.compare(window("unknown", stuck))
    assert flat.flatlined == ["pressure"] and flat.drifted  # stuck, whatever its normal


def test_reference_sensors_without_a_baseline_use_their_own_first_rows() -> None:
    high = pump(3, 1000, LEVEL * 4.0)
    low = pump(4, 1000)
    reference = Reference(
        "ref-two", FEATURES, np.vstack([high, low]), "t", np.array(["h"] * 1000 + ["l"] * 1000)
    )
    relative = relative_reference(reference, {"l": baseline_of("l", low)}.get, BASELINE_ROWS)
    assert (relative.sensors, relative.own, relative.skipped) == (2, 1, 0)
    # Both pumps end up around 0 in units of their own normal, whatever their level.
    assert np.abs(relative.values.mean(axis=0)).max() < 1.0

    one = Reference("ref-one", FEATURES, high, "t")  # no sensor ids: one sensor's readings
    assert relative_reference(one, {}.get, BASELINE_ROWS).own == 1
    short = Reference("ref-short", FEATURES, high[:60], "t")  # a quarter is under 20 rows
    with pytest.raises(ConfigurationError, match="too few rows"):
        relative_reference(short, {}.get, BASELINE_ROWS)


def test_the_lookup_takes_the_bundles_baseline_then_the_stores(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reference_path = tmp_path / "references" / "3.parquet"
    beside = BaselineStore(baselines_beside(reference_path))
    bundle_a = baseline_of("a", pump(1, 500))
    beside.save(bundle_a)
    store = BaselineStore(tmp_path / "baselines")
    store.save(baseline_of("a", pump(2, 500)))  # the bundle's wins
    store.save(baseline_of("b", pump(3, 500)))
    other = from_first_readings(
        pd.DataFrame(pump(4, 500), columns=FEATURES), "c", FEATURES[:3], 400
    )
    assert other is not None
    store.save(other)  # a baseline of other measurements is not this sensor's normal here

    lookup = baseline_lookup(bundle_baselines(reference_path), store, FEATURES)

    assert baselines_beside(reference_path) == tmp_path / "references" / "3.baselines"
    assert lookup("a") == bundle_a
    assert lookup("b") == store.get("b")
    assert lookup("c") is None
    assert lookup("d") is None
    assert bundle_baselines(tmp_path / "none.parquet") == {}
