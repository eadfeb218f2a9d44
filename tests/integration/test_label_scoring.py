"""The labelled scores kept incrementally (driftline.labels.scoring) on MariaDB and SQLite: they
equal a full join of every label with every prediction, through predictions stored before and
after their labels, a corrected annotation and pruning, and a pass applies only new labels."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from driftline.core.records import Prediction
from driftline.labels.annotations import LabelRow
from driftline.labels.candidates import TaskCandidate
from driftline.labels.performance import join_labels, rolling_scores
from driftline.labels.scoring import LabelledScores
from driftline.labels.store import LabelStore, create_label_tables, labelled_predictions

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = 40


def prediction(sensor: str, second: int, label: int, version: str = "3") -> Prediction:
    return Prediction(
        reading_id=f"{sensor}-{second}",
        sensor_id=sensor,
        ts=T0 + timedelta(seconds=second),
        anomaly_probability=0.9 if label else 0.1,
        label=label,
        model_name="pump-anomaly",
        model_version=version,
    )


def task(store: LabelStore, sensor: str, start: int, end: int) -> TaskCandidate:
    t = TaskCandidate(
        "anomaly_episode", sensor, T0 + timedelta(seconds=start), T0 + timedelta(seconds=end), "e"
    )
    store.add_candidates([t], T0)
    return t


def annotate(
    store: LabelStore,
    t: TaskCandidate,
    regions: list[tuple[int, int, str]],
    annotation: int,
    version: str = "v1",
    at: datetime | None = None,
) -> None:
    rows = [
        LabelRow(
            label_id=f"{annotation}-{version}-{i}",
            task_key=t.key,
            ls_task_id=annotation,
            annotation_id=annotation,
            annotation_version=version,
            sensor_id=t.sensor_id,
            start=T0 + timedelta(seconds=start),
            end=T0 + timedelta(seconds=end),
            label=label,
            annotator="op@example.com",
            annotated_at=T0,
            source="pull",
        )
        for i, (start, end, label) in enumerate(regions)
    ]
    store.record(rows, at or datetime.now(UTC))


def full_join(store: LabelStore, window: int) -> dict[str, tuple[int, int, int, int]]:
    """The scores as every pass computed them before: every label joined with every
    prediction."""
    with store.engine.connect() as conn:
        predictions = [dict(r) for r in conn.execute(sa.select(labelled_predictions)).mappings()]
    scores = rolling_scores(join_labels(predictions, store.all_labels()), window)
    return {v: counts(s) for v, s in scores.items()}


def counts(s) -> tuple[int, int, int, int]:
    return (s.readings, s.true_positives, s.false_positives, s.false_negatives)


def incremental(scores: LabelledScores, window: int) -> dict[str, tuple[int, int, int, int]]:
    scores.apply_labels()
    return {v: counts(s) for v, s in scores.scores(window).items()}


@pytest.fixture
def stores(database_url: str):
    engine = sa.create_engine(database_url)
    create_label_tables(engine)
    yield LabelStore(engine), LabelledScores(engine, keep=timedelta(hours=1))
    engine.dispose()


def test_incremental_scores_equal_the_full_join(stores) -> None:
    store, scores = stores
    rng = random.Random(7)
    sensors = ["pump-001", "pump-002"]
    # Predictions first, then labels over them (a task with a verdict and regions inside).
    scores.add_predictions(
        [
            prediction(s, n, rng.random() < 0.3, rng.choice("34"))
            for s in sensors
            for n in range(300)
        ]
    )
    a = task(store, "pump-001", 0, 200)
    annotate(store, a, [(0, 200, "normal"), (50, 80, "fault"), (120, 130, "unsure")], 1)
    assert incremental(scores, WINDOW) == full_join(store, WINDOW) != {}

    # Labels first, then predictions inside them: labelled as they are stored.
    b = task(store, "pump-002", 400, 500)
    annotate(store, b, [(400, 500, "fault")], 2)
    incremental(scores, WINDOW)
    scores.add_predictions(
        [prediction("pump-002", n, int(rng.random() < 0.5)) for n in range(400, 460)]
    )
    with store.engine.connect() as conn:
        stored = conn.execute(
            sa.select(labelled_predictions.c.actual).where(
                labelled_predictions.c.reading_id == "pump-002-430"
            )
        ).scalar_one()
    assert stored == 1
    assert incremental(scores, WINDOW) == full_join(store, WINDOW)

    # A corrected annotation: the fault region moves; the readings it left are normal again.
    annotate(store, a, [(0, 200, "normal"), (150, 160, "fault")], 1, version="v2")
    assert incremental(scores, WINDOW) == full_join(store, WINDOW)
    assert incremental(scores, 10_000) == full_join(store, 10_000)
    with store.engine.connect() as conn:
        fault = conn.execute(
            sa.select(sa.func.count()).where(
                labelled_predictions.c.sensor_id == "pump-001",
                labelled_predictions.c.actual == 1,
            )
        ).scalar_one()
    assert fault == 11  # seconds 150..160


def test_a_pass_applies_only_labels_recorded_since_its_mark_and_prunes(stores) -> None:
    store, scores = stores
    scores.add_predictions([prediction("pump-001", n, 1) for n in range(100)])
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    annotate(store, task(store, "pump-001", 0, 50), [(0, 50, "fault")], 1, at=long_ago)
    assert scores.apply_labels() == 1
    assert scores.apply_labels() == 0  # nothing new since the mark
    annotate(store, task(store, "pump-001", 60, 90), [(60, 90, "normal")], 2)
    assert scores.apply_labels() == 1  # the new one only
    assert scores.apply_labels() == 1  # and again while it is recent (within OVERLAP)
    (score,) = scores.scores(WINDOW).values()
    # The newest 40 labelled readings: 60..90 (normal, flagged) and 42..50 (fault, flagged).
    assert counts(score) == (WINDOW, 9, 31, 0)

    scores.add_predictions([prediction("pump-001", 7300, 0)])  # two hours on
    assert scores.prune() == 100  # those more than an hour behind it
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(labelled_predictions.c.reading_id)).scalars().all()
    assert left == ["pump-001-7300"]
    # One reading stamped far in the future does not prune a recent one.
    recent, future = (
        Prediction.model_validate(
            {**prediction("pump-001", 0, 0).model_dump(), "reading_id": rid, "ts": ts}
        )
        for rid, ts in (
            ("recent", datetime.now(UTC) - timedelta(minutes=10)),
            ("future", datetime(2099, 1, 1, tzinfo=UTC)),
        )
    )
    scores.add_predictions([recent, future])
    scores.prune()
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(labelled_predictions.c.reading_id)).scalars().all()
    assert sorted(left) == ["future", "recent"]


def test_a_reading_has_one_row_and_a_served_prediction_wins_over_a_streamed_one(stores) -> None:
    store, scores = stores
    annotate(store, task(store, "pump-001", 0, 99), [(0, 99, "fault")], 1)
    scores.add_predictions([prediction("pump-001", n, 0) for n in range(0, 60)], "streamed")
    scores.add_predictions([prediction("pump-001", n, 1) for n in range(40, 100)], "served")
    scores.add_predictions([prediction("pump-001", n, 0) for n in range(0, 100)], "streamed")
    lp = labelled_predictions
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(lp.c.reading_id, lp.c.source, lp.c.predicted)).all()
    assert len(rows) == 100
    assert {r[0] for r in rows if r[1] == "served"} == {f"pump-001-{n}" for n in range(40, 100)}
    assert all(r[2] == (r[1] == "served") for r in rows)  # the served prediction is kept
    score = scores.scores(WINDOW)["3"]
    assert dict(score.by_source) == {"served": WINDOW}
    assert dict(scores.scores(1000)["3"].by_source) == {"served": 60, "streamed": 40}
