"""Per-sensor baselines and the features relative to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.baseline import (
    BaselineError,
    SensorBaseline,
    from_first_readings,
    from_period,
)
from driftline.anomaly.features import FeatureRecipe, causal_mean, relative_features

MEASUREMENTS = ["flow", "current", "temperature"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def readings(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "flow": 32 + rng.normal(0, 0.5, n),
            "current": 1.0 + rng.normal(0, 0.1, n),
            "temperature": 70 + np.cumsum(rng.normal(0, 0.02, n)),
        }
    )
    frame.insert(0, "ts", [START + timedelta(seconds=i) for i in range(n)])
    return frame


def test_pending_until_enough_valid_readings() -> None:
    frame = readings(50)
    assert from_first_readings(frame, "pump-1", MEASUREMENTS, 51) is None
    frame.loc[3, "flow"] = np.nan
    frame["current"] = frame["current"].astype(object)
    frame.loc[4, "current"] = "broken"
    # Two of the 50 rows are not valid: 48 remain.
    assert from_first_readings(frame, "pump-1", MEASUREMENTS, 49) is None
    baseline = from_first_readings(frame, "pump-1", MEASUREMENTS, 48)
    assert baseline is not None and baseline.count == 48
    assert baseline.end == START + timedelta(seconds=49)


def test_first_readings_in_time_order_and_statistics() -> None:
    frame = readings(500)
    baseline = from_first_readings(frame.iloc[::-1], "pump-1", MEASUREMENTS, 400)
    assert baseline is not None
    expected = frame[MEASUREMENTS].to_numpy()[:400]
    np.testing.assert_array_equal(baseline.values(), expected)
    np.testing.assert_allclose(baseline.mean, expected.mean(axis=0))
    np.testing.assert_allclose(baseline.std, expected.std(axis=0, ddof=1))
    np.testing.assert_allclose(baseline.median, np.median(expected, axis=0))
    assert baseline.source == "first-readings" and baseline.start == START


def test_named_period() -> None:
    frame = readings(300)
    naive_start = datetime(2026, 1, 1, 0, 1, 40)  # no tzinfo: taken as UTC
    baseline = from_period(
        frame, "pump-1", MEASUREMENTS, naive_start, START + timedelta(seconds=199)
    )
    assert baseline.count == 100 and baseline.source == "period"
    np.testing.assert_array_equal(baseline.values(), frame[MEASUREMENTS].to_numpy()[100:200])
    with pytest.raises(BaselineError, match="before it starts"):
        from_period(frame, "pump-1", MEASUREMENTS, START, START)
    with pytest.raises(BaselineError, match="need at least 2"):
        from_period(
            frame, "pump-1", MEASUREMENTS, START - timedelta(days=2), START - timedelta(days=1)
        )
    with pytest.raises(BaselineError, match="lack measurements"):
        from_period(frame, "pump-1", ["vibration"], START, START + timedelta(seconds=10))


def test_json_round_trip_is_exact_and_versioned() -> None:
    baseline = from_first_readings(readings(400), "pump-1", MEASUREMENTS, 400)
    assert baseline is not None
    again = SensorBaseline.from_json(baseline.to_json())
    assert again == baseline and again.version == baseline.version
    np.testing.assert_array_equal(again.values(), baseline.values())
    other = from_first_readings(readings(400, seed=1), "pump-1", MEASUREMENTS, 400)
    assert other is not None and other.version != baseline.version
    with pytest.raises(BaselineError, match="schema version"):
        SensorBaseline.from_json(
            baseline.to_json().replace('"schema_version":1', '"schema_version":9')
        )


def test_constant_measurement_gets_a_nonzero_scale() -> None:
    frame = readings(100)
    frame["flow"] = 32.0
    baseline = from_first_readings(frame, "pump-1", MEASUREMENTS, 100)
    assert baseline is not None
    assert baseline.std[0] == 0.0 and baseline.scale()[0] > 0
    assert np.isfinite(baseline.standardise(frame[MEASUREMENTS].to_numpy())).all()


def test_causal_mean_matches_a_plain_loop_and_skips_nan() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(50, 2))
    values[7, 0] = np.nan
    got = causal_mean(values, 5)
    for i in range(50):
        window = values[max(0, i - 4) : i + 1]
        np.testing.assert_allclose(got[i], np.nanmean(window, axis=0))


def test_features_do_not_look_ahead() -> None:
    frame = readings(700)
    baseline = from_first_readings(frame, "pump-1", MEASUREMENTS, 400)
    assert baseline is not None
    recipe = FeatureRecipe(raw=True, windows=(5, 30), spread=True)
    values = frame[MEASUREMENTS].to_numpy()
    full = relative_features(values, baseline, recipe)
    changed = values.copy()
    changed[600:] += 100.0
    np.testing.assert_array_equal(relative_features(changed, baseline, recipe)[:600], full[:600])
    assert full.shape == (700, len(recipe.columns(baseline.measurements)))


def test_features_are_the_same_at_another_operating_point() -> None:
    """Flow x3, current x2, temperature +10: each pump judged against its own normal."""
    frame = readings(700)
    moved = frame.copy()
    moved["flow"] *= 3
    moved["current"] *= 2
    moved["temperature"] += 10
    recipe = FeatureRecipe(raw=True, windows=(10,), spread=True)
    features = []
    for f in (frame, moved):
        baseline = from_first_readings(f, "pump-1", MEASUREMENTS, 400)
        assert baseline is not None
        features.append(relative_features(f[MEASUREMENTS].to_numpy(), baseline, recipe))
    np.testing.assert_allclose(features[0], features[1], atol=1e-8)


def test_features_reject_readings_of_another_shape() -> None:
    baseline = from_first_readings(readings(400), "pump-1", MEASUREMENTS, 400)
    assert baseline is not None
    with pytest.raises(ValueError, match="measurements"):
        relative_features(np.zeros((5, 2)), baseline, FeatureRecipe())
    with pytest.raises(ValueError, match="lacks"):
        relative_features(np.zeros((5, 3)), baseline, FeatureRecipe(measurements=("vibration",)))


def test_store_keeps_one_file_per_sensor_and_the_previous_version(tmp_path) -> None:
    from driftline.anomaly.baseline_store import BaselineStore

    store = BaselineStore(tmp_path / "baselines")
    assert store.get("pump-1") is None and store.all() == []
    one = from_first_readings(readings(100), "pump/1", MEASUREMENTS, 100)
    other = from_first_readings(readings(100, seed=2), "pump_1", MEASUREMENTS, 100)
    assert one is not None and other is not None
    store.save(one)
    store.save(other)
    # Ids that clean to the same file name do not overwrite each other.
    assert store.get("pump/1") == one and store.get("pump_1") == other
    newer = from_first_readings(readings(100, seed=3), "pump/1", MEASUREMENTS, 100)
    assert newer is not None
    store.save(newer)
    assert store.get("pump/1") == newer
    assert [b.sensor_id for b in store.all()] == ["pump/1", "pump_1"]
    assert len(list(store.directory.glob(f"*.{one.version}.json"))) == 1
    with pytest.raises(BaselineError):
        store.get("")
