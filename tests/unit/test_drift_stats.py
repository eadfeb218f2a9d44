"""Drift tests agree with Evidently: the normed Wasserstein score equals Evidently's function,
and DriftDetector's per-feature decisions equal those of a DataDriftPreset Report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.drift.detector import DriftDetector, window_event_id
from driftline.drift.reference import Reference
from driftline.drift.stats import (
    EvidentlyStatTest,
    NormedWasserstein,
    is_flatlined,
    make_feature_test,
)
from driftline.drift.windows import ClosedWindow
from tests.unit.factories import NOW

THRESHOLDS = (2.0, 0.1)
WINDOW = 300
# Window index -> {feature: shift in reference standard deviations}.
SHIFTS: dict[int, dict[str, float]] = {
    1: {"Current": 3.0, "Voltage": -2.5},
    3: {"Pressure": 4.0},
    4: {"Accelerometer1RMS": 0.05},  # small: drifted at 0.1 only, if at all
    6: {"Temperature": -3.0, "Current": 2.5, "Volume Flow RateRMS": 5.0},
}


@pytest.fixture(scope="module")
def evidently_api() -> Any:
    """Evidently's own normed Wasserstein and KS functions (importing evidently is slow)."""
    from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import (
        _wasserstein_distance_norm,
    )
    from evidently.legacy.core import ColumnType

    class Api:
        wasserstein = staticmethod(_wasserstein_distance_norm)
        ks = staticmethod(_ks_stat_test)
        numerical = ColumnType.Numerical

    return Api


def evidently_wasserstein(api: Any, reference: np.ndarray, window: np.ndarray, t: float):  # type: ignore[no-untyped-def]
    return api.wasserstein(pd.Series(reference), pd.Series(window), api.numerical, t)


# --- NormedWasserstein is Evidently's function ------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_normed_wasserstein_equals_evidently_on_random_data(evidently_api: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_ref, n_cur = rng.integers(20, 2000, size=2)
    reference = rng.normal(rng.normal(), rng.uniform(0.1, 10), size=n_ref)
    window = rng.normal(rng.normal(), rng.uniform(0.1, 10), size=n_cur)
    if seed % 2:  # ties and repeated values
        reference, window = np.round(reference), np.round(window)
    test = NormedWasserstein(reference, threshold=0.1)
    score, drifted = test.score(window)
    expected, expected_drift = evidently_wasserstein(evidently_api, reference, window, 0.1)
    assert score == pytest.approx(expected, abs=1e-9, rel=1e-12)
    assert drifted == bool(expected_drift)


@pytest.mark.parametrize(
    ("reference", "window"),
    [
        (np.full(50, 3.0), np.full(40, 3.0)),  # constant reference: std floor 0.001
        (np.full(50, 3.0), np.linspace(2.0, 4.0, 40)),
        (np.arange(100.0), np.arange(100.0)),  # identical samples: distance 0
        (np.array([0.0, 1.0]), np.array([5.0])),  # one-value window
        (np.linspace(0, 1, 37), np.linspace(0, 1, 37)[::-1] + 1e-12),
    ],
    ids=["constant", "constant-ref", "identical", "tiny", "near-identical"],
)
def test_normed_wasserstein_equals_evidently_on_edge_cases(
    evidently_api: Any, reference: np.ndarray, window: np.ndarray
) -> None:
    score, _ = NormedWasserstein(reference, threshold=2.0).score(window)
    expected, _ = evidently_wasserstein(evidently_api, reference, window, 2.0)
    assert score == pytest.approx(expected, abs=1e-9)


def test_normed_wasserstein_equals_evidently_on_skab(
    evidently_api: Any, skab_normal: pd.DataFrame
) -> None:
    reference = skab_normal.iloc[:4000]
    for start in range(4000, len(skab_normal) - WINDOW, 1100):
        window = skab_normal.iloc[start : start + WINDOW]
        for feature in skab_normal.columns:
            ref, cur = reference[feature].to_numpy(), window[feature].to_numpy()
            score, _ = NormedWasserstein(ref, threshold=2.0).score(cur)
            expected, _ = evidently_wasserstein(evidently_api, ref, cur, 2.0)
            assert score == pytest.approx(expected, abs=1e-9), (start, feature)


def test_normed_wasserstein_does_not_change_its_reference() -> None:
    reference = np.array([3.0, 1.0, 2.0])
    test = NormedWasserstein(reference, threshold=1.0)
    test.score(np.array([9.0, 8.0]))
    assert reference.tolist() == [3.0, 1.0, 2.0]


def test_normed_wasserstein_threshold_is_inclusive() -> None:
    reference = np.array([0.0, 2.0])  # std 1
    score, drifted = NormedWasserstein(reference, threshold=1.0).score(np.array([1.0, 3.0]))
    assert score == pytest.approx(1.0)
    assert drifted == (score >= 1.0)
    _, below = NormedWasserstein(reference, threshold=score + 1e-9).score(np.array([1.0, 3.0]))
    assert not below


# --- any other stattest goes through Evidently's registry -------------------------------------


@pytest.mark.parametrize("shift", [0.0, 0.15, 1.0])
def test_ks_stattest_equals_evidently_ks(evidently_api: Any, shift: float) -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=800)
    window = rng.normal(size=300) + shift
    test = make_feature_test("ks", reference, threshold=0.05)
    assert isinstance(test, EvidentlyStatTest)
    assert test.stattest == "ks"
    p_value, drifted = test.score(window)
    expected_p, expected_drift = evidently_api.ks(
        pd.Series(reference), pd.Series(window), evidently_api.numerical, 0.05
    )
    assert p_value == pytest.approx(expected_p, abs=1e-12)
    assert drifted == bool(expected_drift)
    assert drifted == (p_value <= 0.05)


def test_ks_tells_shifted_from_same_distribution() -> None:
    rng = np.random.default_rng(3)
    test = make_feature_test("ks", rng.normal(size=1000), threshold=0.05)
    assert test.score(rng.normal(size=300) + 1.0)[1]
    assert not test.score(rng.normal(size=300))[1]


def test_wasserstein_is_computed_without_evidently() -> None:
    test = make_feature_test("wasserstein", np.arange(10.0), threshold=0.3)
    assert isinstance(test, NormedWasserstein)
    assert (test.stattest, test.threshold) == ("wasserstein", 0.3)


def test_an_unknown_stattest_is_rejected() -> None:
    with pytest.raises(Exception, match="no_such_test"):
        make_feature_test("no_such_test", np.arange(10.0), threshold=0.1)


# --- flatlines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "distinct", "flat"),
    [
        (np.full(30, 2.5), 6, True),
        (np.full(300, 0.0), 1000, True),
        (np.full(29, 2.5), 6, False),  # too short to tell
        (np.full(30, 2.5), 5, False),  # the reference itself barely varies
        (np.r_[np.full(29, 2.5), 2.6], 100, False),
        (np.r_[2.6, np.full(29, 2.5)], 100, False),
    ],
)
def test_is_flatlined(window: np.ndarray, distinct: int, flat: bool) -> None:
    assert is_flatlined(window, distinct) is flat


# --- DriftDetector agrees with an Evidently Report ---------------------------------------------


def make_windows(frame: pd.DataFrame, reference: pd.DataFrame) -> list[pd.DataFrame]:
    std = reference.std(ddof=0)
    rest = frame.iloc[len(reference) :].reset_index(drop=True)
    windows = []
    for i in range(8):
        window = rest.iloc[i * 600 : i * 600 + WINDOW].copy()
        for feature, k in SHIFTS.get(i, {}).items():
            window[feature] = window[feature] + k * std[feature]
        windows.append(window.reset_index(drop=True))
    return windows


def closed_window(values: pd.DataFrame, i: int) -> ClosedWindow:
    start = NOW + pd.Timedelta(minutes=5 * i)
    return ClosedWindow(
        sensor_id="pump-001",
        start=start,
        end=start + pd.Timedelta(seconds=WINDOW - 1),
        values=values.to_numpy(dtype="float64"),
        closed_by="count",
        first_reading_id=f"first-{i}",
        last_reading_id=f"last-{i}",
    )


def report_results(
    reference: pd.DataFrame, window: pd.DataFrame, threshold: float
) -> tuple[dict[str, tuple[float, bool]], float]:
    """Per column (score, drifted) and the drifted share, as a DataDriftPreset Report says."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = list(reference.columns)
    dd = DataDefinition(numerical_columns=cols)
    snap = Report(
        [DataDriftPreset(method="wasserstein", threshold=threshold)], include_tests=True
    ).run(
        current_data=Dataset.from_pandas(window.reset_index(drop=True), data_definition=dd),
        reference_data=Dataset.from_pandas(reference.reset_index(drop=True), data_definition=dd),
    )
    d = snap.dict()
    status = {
        t["metric_config"]["metric_id"]: t["status"] for t in d["tests"] if t["id"] == "drift"
    }
    columns: dict[str, tuple[float, bool]] = {}
    share = float("nan")
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            assert cfg["method"] == "wasserstein" and cfg["threshold"] == threshold
            columns[cfg["column"]] = (float(m["value"]), status[m["id"]] == "FAIL")
        elif cfg["type"].endswith("DriftedColumnsCount"):
            share = float(m["value"]["share"])
    assert sorted(columns) == sorted(cols)
    return columns, share


@pytest.fixture(scope="module")
def comparison(skab_normal: pd.DataFrame) -> dict[str, Any]:
    """Driftline's and Evidently's verdicts on the same 8 windows, at each threshold."""
    reference = skab_normal.iloc[:4000].reset_index(drop=True)
    windows = make_windows(skab_normal, reference)
    ref = Reference("ref-test", list(reference.columns), reference.to_numpy(dtype="float64"), "t")
    out: dict[str, Any] = {"features": list(reference.columns), "windows": len(windows)}
    for t in THRESHOLDS:
        detector = DriftDetector(ref, "wasserstein", threshold=t, share_threshold=0.375)
        out[t] = [
            (detector.compare(closed_window(w, i)), *report_results(reference, w, t))
            for i, w in enumerate(windows)
        ]
    return out


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_per_feature_drift_decisions_equal_an_evidently_report(
    comparison: dict[str, Any], threshold: float
) -> None:
    decisions = []
    for i, (event, columns, _) in enumerate(comparison[threshold]):
        ours = {f.feature: f.drifted for f in event.features}
        theirs = {name: drifted for name, (_, drifted) in columns.items()}
        assert ours == theirs, f"window {i}"
        decisions += ours.values()
    # Both outcomes occur, or the comparison would prove little.
    assert any(decisions) and not all(decisions)


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_per_feature_scores_equal_an_evidently_report(
    comparison: dict[str, Any], threshold: float
) -> None:
    for i, (event, columns, _) in enumerate(comparison[threshold]):
        for f in event.features:
            assert f.statistic == pytest.approx(columns[f.feature][0], abs=1e-9), (i, f.feature)
            assert f.stattest == "wasserstein"
            assert f.threshold == threshold


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_drift_share_equals_an_evidently_report(
    comparison: dict[str, Any], threshold: float
) -> None:
    for event, _, share in comparison[threshold]:
        assert event.drift_share == pytest.approx(share)


def test_shifted_features_are_detected_at_threshold_two(comparison: dict[str, Any]) -> None:
    for i, (event, _, _) in enumerate(comparison[2.0]):
        drifted = {f.feature for f in event.features if f.drifted}
        big = {name for name, k in SHIFTS.get(i, {}).items() if abs(k) >= 2.5}
        assert big <= drifted, f"window {i}"


def test_drift_event_fields(comparison: dict[str, Any]) -> None:
    for i, (event, _, _) in enumerate(comparison[2.0]):
        assert event.sensor_id == "pump-001"
        assert event.window_size == WINDOW
        assert event.reference_id == "ref-test"
        assert event.closed_by == "count"
        assert [f.feature for f in event.features] == comparison["features"]
        assert event.window_start == NOW + pd.Timedelta(minutes=5 * i)
        share = sum(f.drifted for f in event.features) / len(event.features)
        assert event.drift_share == share
        assert event.drifted == (share >= 0.375 or bool(event.flatlined))
        assert event.flatlined == []


def test_a_flatlined_feature_makes_the_window_drifted() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(500, 3))
    ref = Reference("ref-x", ["a", "b", "c"], values, "t")
    detector = DriftDetector(ref, "wasserstein", threshold=2.0, share_threshold=0.5)
    window = rng.normal(size=(60, 3))
    window[:, 1] = 0.0  # stuck at a typical value: no distribution test would notice
    event = detector.compare(closed_window(pd.DataFrame(window), 0))
    assert event.drift_share == 0.0
    assert event.flatlined == ["b"]
    assert event.drifted


def test_the_window_event_id_is_stable_per_window_and_reference() -> None:
    frame = pd.DataFrame(np.zeros((3, 2)))
    a, b = closed_window(frame, 1), closed_window(frame, 1)
    assert window_event_id(a, "ref-1") == window_event_id(b, "ref-1")
    assert window_event_id(a, "ref-1") != window_event_id(a, "ref-2")
    assert window_event_id(a, "ref-1") != window_event_id(closed_window(frame, 2), "ref-1")
    assert len(window_event_id(a, "ref-1")) == 32
