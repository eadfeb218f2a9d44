"""The served model: scores online equal the offline ones, each sensor judged by its own
baseline; a sensor without one is pending (no score) until its commissioning period is done."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.automl import defaults
from driftline.anomaly.baseline import SensorBaseline
from driftline.anomaly.bundle import PENDING, READY, ModelBundle, OnlineScorer, alarm_probability
from driftline.anomaly.model import AnomalyModel
from driftline.core.records import ValidReading
from tests.pumps import MEASUREMENTS, pump

START = datetime(2026, 1, 1, tzinfo=UTC)


def readings(sensor: str, values: np.ndarray) -> list[ValidReading]:
    return [
        ValidReading(
            reading_id=f"{sensor}-{i}",
            sensor_id=sensor,
            ts=START + timedelta(seconds=i),
            seq=i,
            values=dict(zip(MEASUREMENTS, map(float, row), strict=True)),
        )
        for i, row in enumerate(values)
    ]


def frame_of(sensor: str, values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=MEASUREMENTS)
    frame.insert(0, "sensor_id", sensor)
    frame.insert(1, "ts", [START + timedelta(seconds=i) for i in range(len(values))])
    return frame


def bundle(family: str = "pca-t2q", **baselines: object) -> ModelBundle:
    spec = defaults(family).model_copy(update={"smooth": 5})
    model = AnomalyModel.fit(spec, [pump(6), pump(7)])
    return ModelBundle(model, dict(baselines), tuple(MEASUREMENTS))  # type: ignore[arg-type]


def feed(scorer: OnlineScorer, items: list[ValidReading], chunk: int = 37) -> list:
    out = []
    for i in range(0, len(items), chunk):
        out += scorer.score(items[i : i + chunk])
    return out


def test_alarm_probability_is_one_half_at_the_threshold_and_keeps_the_order() -> None:
    scores = np.array([0.0, 0.5, 1.5, 3.0, np.nan])
    p = alarm_probability(scores, 1.5)
    assert p[2] == 0.5 and p[4] == 0.0
    assert list(np.argsort(p[:4])) == [0, 1, 2, 3]
    assert ((p >= 0) & (p <= 1)).all()


@pytest.mark.parametrize("family", ["pca-t2q", "mset", "xgboost"])
def test_online_scores_equal_offline_against_the_bundles_baseline(family: str) -> None:
    recording = pump(1)
    b = bundle(family, **{"pump-1": recording.baseline})
    scorer = OnlineScorer(b)
    served = feed(scorer, readings("pump-1", recording.values))
    offline, versions = b.frame_scores(frame_of("pump-1", recording.values))
    assert {s.baseline for s in served} == {READY}
    assert {s.baseline_version for s in served} == set(versions) == {recording.baseline.version}
    np.testing.assert_allclose([s.probability for s in served], offline, rtol=1e-9)
    # It holds only what the longest window and the smoothing need, never the whole series.
    assert len(scorer.recent._recent["pump-1"][0]) == scorer.needed
    alarms = np.array([s.probability for s in served]) >= 0.5
    assert alarms[650:800].mean() > 0.8 and alarms[400:550].mean() < 0.1


def test_a_sensor_without_baseline_is_pending_until_its_own_is_complete(tmp_path: Path) -> None:
    recording = pump(2)
    completed: list[SensorBaseline] = []

    def store(baseline: SensorBaseline) -> SensorBaseline:  # what was stored is used
        completed.append(baseline)
        return baseline

    scorer = OnlineScorer(bundle(), baseline_readings=400, on_baseline=store)
    served = feed(scorer, readings("new-pump", recording.values))
    assert [s.baseline for s in served[:400]] == [PENDING] * 400
    assert all(s.probability is None and s.baseline_version is None for s in served[:400])
    assert {s.baseline for s in served[400:]} == {READY}
    assert len(completed) == 1 and completed[0].count == 400
    # Its baseline is its first 400 readings, as training makes it: the same scores.
    assert completed[0].version == recording.baseline.version
    offline, _ = bundle().frame_scores(frame_of("new-pump", recording.values), 400)
    np.testing.assert_allclose([s.probability for s in served[400:]], offline[400:], rtol=1e-9)


def test_no_score_from_another_sensors_normal() -> None:
    other = pump(3).baseline  # named pump-3
    scorer = OnlineScorer(bundle(**{"pump-3": other}))
    served = scorer.score(readings("pump-4", pump(4).values[:50]))
    assert {s.baseline for s in served} == {PENDING}
    # A baseline set since for the sensor (the store) is used.
    own = pump(4).baseline
    scorer = OnlineScorer(bundle(), lookup={"pump-4": own}.get)
    assert {s.baseline_version for s in scorer.score(readings("pump-4", pump(4).values[:5]))} == {
        own.version
    }


def test_bundle_saves_and_loads_with_its_baselines(tmp_path: Path) -> None:
    model = AnomalyModel.fit(defaults("xgboost"), [pump(6), pump(7)])
    b = ModelBundle(model, {"pump-5": pump(5).baseline}, tuple(MEASUREMENTS))
    loaded = ModelBundle.load(b.save(tmp_path / "bundle"))
    assert loaded.family == "xgboost" and loaded.baselines_version == b.baselines_version
    frame = frame_of("pump-5", pump(5).values)
    np.testing.assert_allclose(loaded.frame_scores(frame)[0], b.frame_scores(frame)[0])
