"""Features and smoothed scores of many sensors in one pass equal those of each sensor alone,
and the online scorer, fed a batch of interleaved sensors, gives the offline scores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from driftline.anomaly.automl import defaults
from driftline.anomaly.batched import causal_means_at, relative_features_of
from driftline.anomaly.bundle import PENDING, READY, ModelBundle, OnlineScorer
from driftline.anomaly.features import FeatureRecipe, causal_mean, relative_features
from driftline.anomaly.model import AnomalyModel
from tests.pumps import MEASUREMENTS, pump

START = datetime(2026, 1, 1, tzinfo=UTC)
RECIPES = [
    FeatureRecipe(raw=True, windows=(5, 15, 30, 60), spread=True),
    FeatureRecipe(raw=False, windows=(7,), spread=False, measurements=("temperature", "flow")),
    FeatureRecipe(raw=True, windows=(), spread=True),
]


@pytest.mark.parametrize("recipe", RECIPES, ids=["xgboost-like", "subset", "raw-only"])
@pytest.mark.parametrize("holes", [False, True], ids=["complete", "missing-values"])
def test_one_pass_over_sensors_equals_each_sensor_alone(recipe: FeatureRecipe, holes: bool) -> None:
    rng = np.random.default_rng(5)
    recordings = [pump(seed) for seed in (1, 2, 3, 4)]
    # Series of every length around the longest window, and tails from none to all rows.
    lengths = [3, 59, 64, 200]
    tails = [3, 1, 64, 17]
    series = []
    for recording, n in zip(recordings, lengths, strict=True):
        values = recording.values[500 : 500 + n].copy()
        if holes:
            values[rng.random(values.shape) < 0.05] = np.nan
        series.append(values)
    baselines = [r.baseline for r in recordings]
    got = relative_features_of(series, baselines, recipe, tails)
    expected = np.vstack(
        [
            relative_features(s, b, recipe, t)
            for s, b, t in zip(series, baselines, tails, strict=True)
        ]
    )
    assert got.shape == expected.shape == (sum(tails), len(recipe.columns(tuple(MEASUREMENTS))))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_baselines_of_other_measurements_are_refused() -> None:
    a, b = pump(1).baseline, pump(2).baseline
    other = b.model_copy(update={"measurements": ("flow", "current", "pressure")})
    with pytest.raises(ValueError, match="share their measurements"):
        relative_features_of([np.ones((5, 3))] * 2, [a, other], FeatureRecipe(), [1, 1])
    with pytest.raises(ValueError, match="3 measurements"):
        relative_features_of([np.ones((5, 2))], [a], FeatureRecipe(), [1])


def test_smoothing_of_several_series_equals_each_alone() -> None:
    rng = np.random.default_rng(9)
    parts = [rng.random(n) for n in (1, 4, 12, 30)]
    parts[2][3] = np.nan
    values = np.concatenate(parts)
    lengths = np.array([len(p) for p in parts])
    positions = np.arange(len(values))
    for window in (1, 5):
        expected = np.concatenate([causal_mean(p[:, None], window)[:, 0] for p in parts])
        got = causal_means_at(values, lengths, positions, window)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def readings_of(sensors: dict[str, np.ndarray]) -> list:
    from driftline.core.records import ValidReading

    n = len(next(iter(sensors.values())))
    return [
        ValidReading(
            reading_id=f"{s}-{i}",
            sensor_id=s,
            ts=START + timedelta(seconds=i),
            seq=i,
            values=dict(zip(MEASUREMENTS, map(float, values[i]), strict=True)),
        )
        for i in range(n)
        for s, values in sensors.items()
    ]


@pytest.mark.parametrize("family", ["pca-t2q", "xgboost"])
def test_interleaved_sensors_in_uneven_batches_get_their_offline_scores(family: str) -> None:
    recordings = {f"pump-{seed}": pump(seed) for seed in (1, 2, 3)}
    baselines = {s: r.baseline for s, r in recordings.items() if s != "pump-3"}
    spec = defaults(family).model_copy(update={"smooth": 5})  # type: ignore[arg-type]
    if family == "xgboost":  # a small booster: the features, not its quality, are under test
        spec = spec.model_copy(update={"params": {**spec.params, "n_estimators": 20}})
    bundle = ModelBundle(AnomalyModel.fit(spec, [pump(6), pump(7)]), baselines, tuple(MEASUREMENTS))
    scorer = OnlineScorer(bundle)
    items = readings_of({s: r.values for s, r in recordings.items()})
    items[10:10] = [items[4], items[7]]  # readings sent twice within a batch and across them
    served = []
    at = 0
    for size in [1, 2, 64, 5, 300, 3, 1000, 7] * 10:
        served += scorer.score(items[at : at + size])
        at += size
        if at >= len(items):
            break
    assert at >= len(items)
    by_sensor: dict[str, list] = {s: [] for s in recordings}
    for reading, outcome in zip(items, served, strict=True):
        by_sensor[reading.sensor_id].append((reading.ts, outcome))
    for sensor, outcomes in by_sensor.items():
        outcomes = sorted(dict(outcomes).items())  # a repeat gets what its first got
        if sensor not in baselines:
            assert {o.baseline for _, o in outcomes} == {PENDING}
            continue
        offline = bundle.model.score(baselines[sensor], recordings[sensor].values)
        expected = offline / (offline + bundle.model.spec.threshold)
        assert {o.baseline for _, o in outcomes} == {READY}
        np.testing.assert_allclose([o.probability for _, o in outcomes], expected, rtol=1e-9)
