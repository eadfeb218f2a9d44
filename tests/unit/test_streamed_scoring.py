"""Streamed readings scored as serving scores them: the same columns and predictions from the
valid-readings topic as from /predict, nothing without a model, and the labelled window
counted by source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from prometheus_client import REGISTRY

from driftline.core.profile import load_profile
from driftline.core.settings import DEFAULT_PROFILE, Settings
from driftline.core.topics import Topics
from driftline.core.valid_topic import decode_valid_reading
from driftline.labels.intake import subscribed
from driftline.labels.performance import Scored, rolling_scores
from driftline.labels.streamed import StreamedScorer
from driftline.serving.path import ServingPath, tag
from driftline.serving.readings import CheckedBatch
from tests.unit.test_serving_path import FEATURES, MeanOfInputs, series

PROFILE = load_profile(DEFAULT_PROFILE)


def wire(readings) -> list[dict]:  # type: ignore[no-untyped-def]
    return [r.model_dump(mode="json", exclude={"reading_id", "label"}) for r in readings]


def test_valid_readings_give_the_columns_serving_checks_them_into() -> None:
    records = series("pump-a", 6) + series("pump-b", 4)
    readings = [decode_valid_reading(r.to_bytes()) for r in records]
    path = ServingPath(
        PROFILE, feature_window=5, threshold=0.5, max_message_bytes=65536, model=lambda: None
    )
    checked = path.checker.check(wire(records))
    assert not checked.reasons
    streamed = CheckedBatch.of_valid(readings, FEATURES)
    assert streamed.reading_ids == checked.reading_ids == [r.reading_id for r in readings]
    assert streamed.sensor_ids == checked.sensor_ids
    assert streamed.times == checked.times and streamed.seqs == checked.seqs
    np.testing.assert_array_equal(streamed.stamps, checked.stamps)
    np.testing.assert_array_equal(streamed.values, checked.values)


def test_a_streamed_prediction_is_the_one_serving_gives_and_none_without_a_model() -> None:
    readings = series("pump-a", 8)
    served: list = []
    serving = ServingPath(
        PROFILE,
        feature_window=5,
        threshold=0.5,
        max_message_bytes=65536,
        model=MeanOfInputs,
        publish=served.extend,
    )
    results = serving.score(tag(wire(readings), "r"))
    assert served, results
    scorer = StreamedScorer(PROFILE, Settings(feature_window=5), MeanOfInputs)
    got = scorer.predictions(readings)
    drop = {"predicted_at"}
    assert [p.model_dump(exclude=drop) for p in got] == [p.model_dump(exclude=drop) for p in served]

    def no_model() -> int:
        return int(
            REGISTRY.get_sample_value(
                "driftline_labels_streamed_readings_total", {"outcome": "no_model"}
            )
            or 0
        )

    before = no_model()
    assert StreamedScorer(PROFILE, Settings(), lambda: None).predictions(readings) == []
    assert no_model() == before + len(readings)


def test_the_labeler_reads_the_valid_readings_only_when_it_scores_them() -> None:
    topics = Topics("t")
    assert topics.valid_readings in subscribed(topics, True)
    assert topics.valid_readings not in subscribed(topics, False)


def test_the_window_counts_its_readings_by_source() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    scored = [
        Scored(
            f"r{i}", "a", t0 + timedelta(seconds=i), "3", 1, 1, "served" if i % 3 else "streamed"
        )
        for i in range(9)
    ]
    score = rolling_scores(scored, window=6)["3"]
    # The newest six: 3..8; streamed are 3 and 6.
    assert score.readings == 6
    assert dict(score.by_source) == {"served": 4, "streamed": 2}
