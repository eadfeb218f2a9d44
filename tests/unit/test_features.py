"""The model's features: per-sensor rolling statistics, the same for training and serving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.core.errors import DriftlineError
from driftline.training.features import add_features, feature_columns

FEATURES = ["a", "b"]


def readings(sensor: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "sensor_id": sensor,
            "ts": pd.date_range("2024-05-01", periods=n, freq="s", tz="UTC"),
            "a": rng.normal(10, 2, n),
            "b": rng.uniform(0, 1, n),
            "label": 0.0,
        }
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    both = pd.concat([readings("pump-1", 50, 1), readings("pump-2", 40, 2)])
    return both.sample(frac=1.0, random_state=3)  # shuffled: order must not matter


def test_feature_columns_are_each_measurement_and_its_statistics() -> None:
    assert feature_columns(FEATURES) == [
        "a", "a_mean", "a_std", "a_dev", "b", "b_mean", "b_std", "b_dev",
    ]  # fmt: skip


def test_features_are_per_sensor_rolling_statistics(frame: pd.DataFrame) -> None:
    out = add_features(frame, FEATURES, window=5)

    assert list(out.columns) == list(frame.columns) + [
        c for c in feature_columns(FEATURES) if c not in FEATURES
    ]
    assert out[["sensor_id", "ts"]].equals(
        frame.sort_values(["sensor_id", "ts"])[["sensor_id", "ts"]].reset_index(drop=True)
    )
    for _, rows in out.groupby("sensor_id"):
        rolling = rows["a"].rolling(5, min_periods=1)
        np.testing.assert_allclose(rows["a_mean"], rolling.mean(), rtol=1e-12)
        np.testing.assert_allclose(rows["a_std"], rolling.std().fillna(0.0), rtol=1e-12)
        np.testing.assert_allclose(rows["a_dev"], rows["a"] - rows["a_mean"], rtol=1e-12)
        # A sensor's first reading starts afresh: nothing carried over from another sensor.
        first = rows.iloc[0]
        assert (first["a_mean"], first["a_std"], first["a_dev"]) == (first["a"], 0.0, 0.0)


def test_recent_history_gives_the_same_features_as_full_history(frame: pd.DataFrame) -> None:
    full = add_features(frame, FEATURES, window=7)
    recent = frame[frame["sensor_id"] == "pump-1"].sort_values("ts").tail(7)

    served = add_features(recent, FEATURES, window=7).iloc[-1]
    trained = full[full["sensor_id"] == "pump-1"].iloc[-1]

    columns = feature_columns(FEATURES)
    assert served[columns].tolist() == trained[columns].tolist()  # bit for bit


def test_features_are_pure_and_deterministic(frame: pd.DataFrame) -> None:
    before = frame.copy()
    first = add_features(frame, FEATURES, window=4)
    pd.testing.assert_frame_equal(frame, before)
    pd.testing.assert_frame_equal(add_features(frame, FEATURES, window=4), first)


def test_missing_values_are_skipped() -> None:
    frame = readings("pump-1", 4, 0)
    frame.loc[1, "a"] = np.nan
    out = add_features(frame, ["a"], window=3)
    assert out.loc[2, "a_mean"] == pytest.approx((frame.loc[0, "a"] + frame.loc[2, "a"]) / 2)
    assert np.isnan(out.loc[1, "a_dev"])


def test_a_window_of_one_has_no_spread() -> None:
    out = add_features(readings("pump-1", 5, 0), ["a"], window=1)
    assert (out["a_mean"] == out["a"]).all() and (out["a_std"] == 0).all()


@pytest.mark.parametrize(
    ("columns", "window"), [(["sensor_id", "ts", "a"], 0), (["sensor_id", "a", "b"], 3)]
)
def test_bad_input_is_refused(columns: list[str], window: int) -> None:
    frame = readings("pump-1", 3, 0)[columns]
    with pytest.raises(DriftlineError):
        add_features(frame, ["a"], window=window)
