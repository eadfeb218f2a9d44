"""Serving's scoring path without BentoML: features as training computes them, whole-request
rejection, repeats that do not count twice, and the model read once per batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.core.profile import load_profile
from driftline.core.records import Prediction
from driftline.core.settings import DEFAULT_PROFILE
from driftline.serving.history import SensorHistory
from driftline.serving.path import (
    RejectedRequest,
    ServingPath,
    Unavailable,
    answers,
    checked_items,
    tag,
)
from driftline.training.features import add_features, feature_columns
from tests.unit.factories import reading_doc, valid_reading

PROFILE = load_profile(DEFAULT_PROFILE)
FEATURES = PROFILE.features
WINDOW = 5
START = datetime.now(UTC) - timedelta(hours=1)


class MeanOfInputs:
    """A stand-in model whose 'probability' exposes the inputs it got."""

    name = "m"

    def __init__(self, version: str = "1") -> None:
        self.version = version
        self.seen: list[pd.DataFrame] = []

    def anomaly_probabilities(self, inputs: pd.DataFrame) -> np.ndarray:
        self.seen.append(inputs)
        return np.full(len(inputs), 0.25 if self.version == "1" else 0.75)


def series(sensor: str, n: int, seed: int = 0) -> list[Any]:
    rng = np.random.default_rng(seed)
    return [
        valid_reading(
            sensor,
            START + timedelta(seconds=i),
            i,
            {
                f: float(v)
                for f, v in zip(FEATURES, rng.normal(1.0, 0.1, len(FEATURES)), strict=True)
            },
        )
        for i in range(n)
    ]


def offline(readings: list[Any]) -> pd.DataFrame:
    frame = pd.DataFrame(
        [{"sensor_id": r.sensor_id, "ts": r.ts, **r.values, "i": i} for i, r in enumerate(readings)]
    )
    featured = add_features(frame, FEATURES, WINDOW).sort_values("i")
    return featured[feature_columns(FEATURES)].reset_index(drop=True)


def test_history_gives_the_features_training_gives_for_any_split() -> None:
    readings = [
        r for pair in zip(series("a", 17), series("b", 17, seed=1), strict=True) for r in pair
    ]
    history = SensorHistory(FEATURES, WINDOW)
    served = pd.concat(
        [history.model_inputs(readings[i : i + 3]) for i in range(0, len(readings), 3)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(served, offline(readings), check_exact=False, rtol=1e-12)
    assert history.sensors() == 2


def test_a_repeated_recent_reading_gets_the_same_inputs_and_does_not_count_twice() -> None:
    readings = series("a", 8)
    history = SensorHistory(FEATURES, WINDOW)
    first = history.model_inputs(readings)
    again = history.model_inputs(readings[-3:] + readings[-1:])
    pd.testing.assert_frame_equal(
        again, first.iloc[[-3, -2, -1, -1]].reset_index(drop=True), check_exact=False
    )


def test_history_forgets_the_longest_unseen_sensors_beyond_its_bound() -> None:
    history = SensorHistory(FEATURES, WINDOW, max_sensors=2)
    for sensor in ("a", "b", "a", "c"):
        history.model_inputs(series(sensor, 2))
    assert history.sensors() == 2
    assert set(history.store._recent) == {"a", "c"}  # type: ignore[attr-defined]


def make_path(model: MeanOfInputs | None, published: list[Prediction]) -> ServingPath:
    return ServingPath(
        PROFILE,
        feature_window=WINDOW,
        threshold=0.5,
        max_message_bytes=64 * 1024,
        model=lambda: model,
        publish=published.extend,
    )


def docs(sensor: str, n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        reading_doc(sensor, START + timedelta(seconds=offset + i), offset + i) for i in range(n)
    ]


def test_a_batch_of_several_requests_is_scored_and_published() -> None:
    published: list[Prediction] = []
    model = MeanOfInputs()
    path = make_path(model, published)
    items = tag(docs("pump-001", 3), "r1") + tag(docs("pump-002", 2), "r2")
    out = path.score(items)
    assert [o["sensor_id"] for o in out] == ["pump-001"] * 3 + ["pump-002"] * 2
    assert {(o["model_version"], o["label"], o["anomaly_probability"]) for o in out} == {
        ("1", 0, 0.25)
    }
    assert len(model.seen) == 1 and len(model.seen[0]) == 5  # one model call for the batch
    assert [p.seq for p in published] == [0, 1, 2, 0, 1]


def test_an_invalid_reading_rejects_its_request_only() -> None:
    published: list[Prediction] = []
    path = make_path(MeanOfInputs(), published)
    bad = reading_doc("pump-001", START, 99, values={"Current": 1e9})
    items = tag([*docs("pump-001", 2), bad], "r1") + tag(docs("pump-002", 2), "r2")
    out = path.score(items)
    with pytest.raises(RejectedRequest) as rejected:
        answers(out[:3])
    assert list(rejected.value.reasons) == [2]
    assert {r["check"] for r in rejected.value.reasons[2]} >= {"in_range"}
    assert [p["sensor_id"] for p in answers(out[3:])] == ["pump-002"] * 2
    assert {p.sensor_id for p in published} == {"pump-002"}
    assert path.history.sensors() == 1  # nothing of the rejected request was remembered


def test_the_same_reading_from_two_requests_is_no_duplicate() -> None:
    path = make_path(MeanOfInputs(), [])
    same = docs("pump-001", 1)
    out = path.score(tag(same, "r1") + tag(same, "r2"))
    assert answers(out) == out and out[0]["reading_id"] == out[1]["reading_id"]


def test_no_model_yet_is_unavailable_and_logged_once_per_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model: MeanOfInputs | None = None
    path = make_path(None, [])
    path.model = lambda: model
    with caplog.at_level("INFO", logger="driftline.serving.path"):
        for i in range(5):
            out = path.score(tag(docs("pump-001", 1, offset=i), "r"))
            with pytest.raises(Unavailable, match="no champion"):
                answers(out)
        assert path.history.sensors() == 0  # nothing was remembered
        model = MeanOfInputs()
        for i in range(3):
            assert answers(path.score(tag(docs("pump-001", 1, offset=i), "r")))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "scoring: answering 503: no champion model is loaded yet",
        "scoring: scoring again",
    ]


@pytest.mark.parametrize(("body", "check"), [([], "not_empty"), ([{}] * 3, "too_many")])
def test_request_bodies_are_bounded(body: Any, check: str) -> None:
    with pytest.raises(RejectedRequest) as rejected:
        checked_items(body, max_readings=2)
    assert rejected.value.as_json()["readings"][0]["reasons"][0]["check"] == check
    assert checked_items({"one": 1}, 2) == [{"one": 1}]


@pytest.mark.parametrize("version", [True, 1.0, "1", 2])
def test_a_record_version_that_is_not_the_integer_1_is_rejected(version: Any) -> None:
    doc = {**docs("pump-001", 1)[0], "v": version}
    with pytest.raises(RejectedRequest) as rejected:
        answers(make_path(MeanOfInputs(), []).score(tag([doc], "r")))
    assert "v" in {r["column"] for r in rejected.value.reasons[0]}


def test_a_prediction_as_json_is_its_json_dump() -> None:
    from driftline.serving.path import as_json

    naive = datetime(2026, 1, 2, 3, 4, 5, 6)
    for ts in (START, naive, START.astimezone(timezone(timedelta(hours=2)))):
        prediction = Prediction(
            reading_id="r",
            sensor_id="pump-1",
            ts=ts,
            seq=None,
            anomaly_probability=0.5,
            label=1,
            model_name="m",
            model_version="3",
        )
        assert as_json(prediction) == prediction.model_dump(mode="json")


class OutOfRange(MeanOfInputs):
    def anomaly_probabilities(self, inputs: pd.DataFrame) -> np.ndarray:
        return np.full(len(inputs), 1.5)


def test_a_probability_outside_0_1_is_refused_as_the_record_would() -> None:
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        make_path(OutOfRange(), []).score(tag(docs("pump-001", 2), "r"))


def anomaly_model(sensors: list[str]) -> Any:
    """A served anomaly-family version (pca-t2q, label-free) with a baseline for ``sensors``."""
    from driftline.anomaly.automl import defaults
    from driftline.anomaly.baseline import from_first_readings
    from driftline.anomaly.bundle import ModelBundle, OnlineScorer
    from driftline.anomaly.model import AnomalyModel
    from driftline.anomaly.registered import LoadedVersion
    from driftline.serving.champion import LoadedModel

    rng = np.random.default_rng(4)
    baselines = {}
    for sensor in sensors:
        rows = pd.DataFrame(rng.normal(1.0, 0.1, (400, len(FEATURES))), columns=FEATURES)
        baselines[sensor] = from_first_readings(rows, sensor, FEATURES, 400)
    spec = defaults("pca-t2q", tuple(FEATURES)).model_copy(update={"smooth": 3})
    bundle = ModelBundle(AnomalyModel.fit(spec, []), baselines, tuple(FEATURES))  # type: ignore[arg-type]
    return LoadedModel("m", "7", "test", LoadedVersion(bundle), OnlineScorer(bundle))


def test_an_anomaly_model_scores_the_columns_and_answers_prediction_records() -> None:
    published: list[Prediction] = []
    model = anomaly_model(["pump-001"])
    path = make_path(model, published)  # type: ignore[arg-type]
    readings = series("pump-001", 40) + series("pump-002", 3, seed=1)
    items = [r.model_dump(mode="json", exclude={"reading_id", "v"}) for r in readings]
    out = path.score(tag(items[:20], "r1") + tag(items[20:], "r2"))
    # Each answer is a Prediction's JSON, field for field, and what was published.
    assert [Prediction.model_validate(o).model_dump(mode="json") for o in out] == out
    assert [p.model_dump(mode="json") for p in published] == out[:40]
    assert [o["reading_id"] for o in out] == [r.reading_id for r in readings]
    assert {(o["family"], o["baseline"]) for o in out[:40]} == {("pca-t2q", "ready")}
    assert {(o["baseline"], o["anomaly_probability"], o["label"]) for o in out[40:]} == {
        ("pending", None, None)
    }
    # The scores are the scorer's own on the readings, and no rolling features were made.
    fresh = anomaly_model(["pump-001"])
    expected = fresh.scorer.score(readings)
    assert [o["anomaly_probability"] for o in out] == [s.probability for s in expected]
    assert path.history.sensors() == 0


def test_columns_in_another_order_than_the_bundles_give_the_same_scores() -> None:
    readings = series("pump-001", 12)
    stamps = np.array([int(r.ts.timestamp() * 1e6) * 1000 for r in readings], dtype="int64")
    values = np.array([[r.values[f] for f in FEATURES] for r in readings])
    order = list(reversed(range(len(FEATURES))))
    sensors = [r.sensor_id for r in readings]
    plain = anomaly_model(["pump-001"]).score_columns(sensors, stamps, values, FEATURES)
    shuffled = anomaly_model(["pump-001"]).score_columns(
        sensors, stamps, values[:, order], [FEATURES[i] for i in order]
    )
    assert shuffled == plain and {s.baseline for s in plain} == {"ready"}
