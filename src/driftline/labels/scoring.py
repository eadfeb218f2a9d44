"""The labelled scores, kept incrementally: each stored prediction carries the label it has
(``labelled_predictions.actual``), set when the prediction is stored and brought up to date for
the readings of the task of each label recorded since the ``labels`` mark (a task's range holds
every version of its annotations, so a replaced version's readings are refreshed too). A pass
then reads a model version's newest labelled readings by index instead of joining every label
with every prediction again. Predictions older than ``keep`` (event time, behind the newest
stored) are dropped, which bounds the table.

A reading has one row, whichever way its prediction came: ``served`` (serving's answer, from
the predictions topic) or ``streamed`` (the labeler's score of a reading from the valid-readings
topic with the champion it holds, ``driftline.labels.streamed``). A served prediction replaces a
streamed one (it is the answer the reading got); a streamed one never replaces a stored one, so
a reading both served and streamed is scored once, by its served prediction.

The label a reading has is ``driftline.labels.performance.join_labels``'s: the narrowest
labelled range of its sensor that covers it; ``unsure`` leaves it unlabelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, select, update

from driftline.core.records import Prediction
from driftline.labels.performance import LabelledScore, Scored, join_labels, rolling_scores
from driftline.labels.store import label_marks, label_tasks, labelled_predictions, labels
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc

DEFAULT_KEEP = timedelta(days=7)  # DRIFTLINE_LABELS_PREDICTIONS_KEEP_SECONDS
LABELS_MARK = "labels"
# Labels recorded this recently are applied again on each pass: a prediction stored while a
# label was being recorded (the webhook's thread) may have missed it, and a label's
# recorded_at is taken before its transaction commits.
OVERLAP = timedelta(seconds=120)
CHUNK = 1000  # reading ids an UPDATE names at most (SQLite's bound variables)
SERVED = "served"  # serving's answer, from the predictions topic
STREAMED = "streamed"  # the labeler's score of a reading from the valid-readings topic

lp = labelled_predictions


@dataclass(frozen=True)
class Span:
    sensor_id: str
    start: datetime
    end: datetime


class LabelledScores:
    def __init__(self, engine: Engine, keep: timedelta = DEFAULT_KEEP) -> None:
        self.engine = engine
        self.keep = keep

    def add_predictions(self, predictions: Sequence[Prediction], source: str = SERVED) -> None:
        """Store predictions with the label each has already (blocking). A reading has one
        row: a served prediction replaces a streamed one of the same reading; a streamed one
        never replaces what is stored."""
        rows: list[dict[str, Any]] = [
            {
                "reading_id": p.reading_id,
                "sensor_id": p.sensor_id,
                "event_ts": naive_utc(p.ts),
                "probability": p.anomaly_probability,
                "predicted": int(p.label),
                "model_version": p.model_version[:64],
                "actual": None,
                "source": source,
            }
            for p in predictions
            if p.label is not None  # baseline pending: nothing was predicted
        ]
        if not rows:
            return
        with self.engine.connect() as conn:
            spans = _spans_over(conn, {(r["sensor_id"], r["event_ts"]) for r in rows})
        actual = {s.reading_id: s.actual for s in join_labels(rows, spans)}
        for r in rows:
            r["actual"] = actual.get(r["reading_id"])
        with self.engine.begin() as conn:
            if source == SERVED:
                ids = [r["reading_id"] for r in rows]
                for i in range(0, len(ids), CHUNK):
                    conn.execute(
                        delete(lp).where(
                            lp.c.reading_id.in_(ids[i : i + CHUNK]), lp.c.source != SERVED
                        )
                    )
            insert_ignoring_duplicates(conn, lp, rows)

    def apply_labels(self) -> int:
        """Bring ``actual`` up to date for the readings of labels recorded since the mark;
        returns how many label ranges were applied. One transaction: the mark moves with
        what it marks."""
        with self.engine.begin() as conn:
            mark = conn.execute(
                select(label_marks.c.mark).where(label_marks.c.name == LABELS_MARK)
            ).scalar()
            # A label's task's range: it holds every version of the task's annotations, so
            # the readings an annotation's replaced version covered are refreshed too.
            t = label_tasks
            query = select(
                labels.c.sensor_id,
                func.coalesce(t.c.start_ts, labels.c.start_ts),
                func.coalesce(t.c.end_ts, labels.c.end_ts),
                labels.c.recorded_at,
            ).outerjoin(t, t.c.task_key == labels.c.task_key)
            if mark is not None:
                query = query.where(labels.c.recorded_at > mark)
            found = conn.execute(query).all()
            if not found:
                return 0
            spans = {Span(r[0], r[1], r[2]) for r in found}
            _refresh(conn, spans)
            newest = min(max(r[3] for r in found), naive_utc(datetime.now(UTC)) - OVERLAP)
            conn.execute(delete(label_marks).where(label_marks.c.name == LABELS_MARK))
            conn.execute(label_marks.insert().values(name=LABELS_MARK, mark=newest))
        return len(spans)

    def scores(self, window: int) -> dict[str, LabelledScore]:
        """Per model version, the score over its newest ``window`` labelled readings."""
        with self.engine.connect() as conn:
            versions = _versions(conn)
            scored: list[Scored] = []
            for version in versions:
                for actual in (0, 1):  # each by the index (model_version, actual, event_ts)
                    rows = conn.execute(
                        select(
                            lp.c.reading_id,
                            lp.c.sensor_id,
                            lp.c.event_ts,
                            lp.c.predicted,
                            lp.c.source,
                        )
                        .where(and_(lp.c.model_version == version, lp.c.actual == actual))
                        .order_by(lp.c.event_ts.desc(), lp.c.reading_id.desc())
                        .limit(window)
                    ).all()
                    scored.extend(
                        Scored(r[0], r[1], r[2], version, r[3], actual, r[4]) for r in rows
                    )
        return rolling_scores(scored, window)

    def prune(self) -> int:
        """Drop predictions ``keep`` older than the newest stored (event time: a replay of old
        readings keeps its own; but never past now, so one reading stamped far in the future
        cannot empty the table)."""
        with self.engine.begin() as conn:
            newest = conn.execute(select(func.max(lp.c.event_ts))).scalar()
            if newest is None:
                return 0
            cutoff = min(newest, naive_utc(datetime.now(UTC))) - self.keep
            return conn.execute(delete(lp).where(lp.c.event_ts < cutoff)).rowcount


def _refresh(conn: Connection, spans: Iterable[Span]) -> None:
    """Set ``actual`` again for the stored predictions inside ``spans``."""
    for span in spans:
        inside = [
            dict(r)
            for r in conn.execute(
                select(lp.c.reading_id, lp.c.sensor_id, lp.c.event_ts, lp.c.predicted)
                .where(lp.c.sensor_id == span.sensor_id)
                .where(lp.c.event_ts.between(span.start, span.end))
            ).mappings()
        ]
        if not inside:
            continue
        for p in inside:
            p["model_version"] = ""
        covering = _spans_over(conn, {(p["sensor_id"], p["event_ts"]) for p in inside})
        actual = {s.reading_id: s.actual for s in join_labels(inside, covering)}
        for value in (0, 1, None):
            ids = [p["reading_id"] for p in inside if actual.get(p["reading_id"]) == value]
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i : i + CHUNK]
                conn.execute(update(lp).where(lp.c.reading_id.in_(chunk)).values(actual=value))


def _versions(conn: Connection) -> list[str]:
    """The model versions with labelled readings, one index probe each (a DISTINCT would read
    the whole index)."""
    versions: list[str] = []
    after: str | None = None
    while True:
        query = select(func.min(lp.c.model_version))
        if after is not None:
            query = query.where(lp.c.model_version > after)
        version = conn.execute(query).scalar()
        if version is None:
            return versions
        after = version
        labelled = conn.execute(
            select(lp.c.reading_id)
            .where(lp.c.model_version == version, lp.c.actual.is_not(None))
            .limit(1)
        ).first()
        if labelled is not None:
            versions.append(version)


def _spans_over(conn: Connection, points: set[tuple[str, datetime]]) -> list[dict[str, Any]]:
    """The labels of each sensor among ``points`` that overlap its points' time range."""
    bounds: dict[str, tuple[datetime, datetime]] = {}
    for sensor, ts in points:
        lo, hi = bounds.get(sensor, (ts, ts))
        bounds[sensor] = (min(lo, ts), max(hi, ts))
    out: list[dict[str, Any]] = []
    for sensor, (lo, hi) in bounds.items():
        out.extend(
            dict(r)
            for r in conn.execute(
                select(labels.c.sensor_id, labels.c.start_ts, labels.c.end_ts, labels.c.label)
                .where(labels.c.sensor_id == sensor)
                .where(labels.c.start_ts <= hi)
                .where(labels.c.end_ts >= lo)
            ).mappings()
        )
    return out
