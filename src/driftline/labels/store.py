"""The labels tables (in the raw store's database) and their queries.

- ``label_tasks``: every task candidate, keyed by its deterministic key; ``ls_task_id`` is set
  once Label Studio has it, so a candidate is sent once.
- ``labels``: operators' labels, one row per verdict or region of an annotation version, keyed by
  a hash of (annotation, version, index): syncing an annotation twice adds nothing. A newer
  version of an annotation replaces the rows of the older one. ``published`` marks rows whose
  LabelRecorded event is on the labels topic (publish, then mark: a crash in between publishes
  again, with the same label id).
- ``labelled_predictions``: the predictions the labeler saw (served, or scored by it from the
  stream: ``source``), each with the label it has (``actual``), kept for
  ``DRIFTLINE_LABELS_PREDICTIONS_KEEP_SECONDS``; ``label_marks``: how far
  labels have been applied to them (driftline.labels.scoring).

The raw store's Alembic migrations make these tables (revisions 0003, which leaves tables an
earlier labeler made with ``create_all`` as they are, 0005 and 0006); ``metadata`` here describes
them for the queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    select,
    update,
)

from driftline.core.records import as_utc
from driftline.labels.annotations import LabelRow
from driftline.labels.candidates import TaskCandidate
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc
from driftline.store.tables import Timestamp

metadata = MetaData()

label_tasks = Table(
    "label_tasks",
    metadata,
    Column("task_key", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("sensor_id", String(128), nullable=False),
    Column("start_ts", Timestamp, nullable=False),
    Column("end_ts", Timestamp, nullable=False),
    Column("reason", Text, nullable=False),
    Column("model_version", String(64), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("ls_task_id", BigInteger, nullable=True),
    Index("ix_label_tasks_ls_task_id", "ls_task_id"),
)

labels = Table(
    "labels",
    metadata,
    Column("label_id", String(32), primary_key=True),
    Column("task_key", String(32), nullable=False),
    Column("ls_task_id", BigInteger, nullable=False),
    Column("annotation_id", BigInteger, nullable=False),
    Column("annotation_version", String(64), nullable=False),
    Column("sensor_id", String(128), nullable=False),
    Column("start_ts", Timestamp, nullable=False),
    Column("end_ts", Timestamp, nullable=False),
    Column("label", String(16), nullable=False),
    Column("annotator", String(255), nullable=False),
    Column("annotated_at", Timestamp, nullable=False),
    Column("source", String(16), nullable=False),
    Column("recorded_at", Timestamp, nullable=False),
    Column("published", Boolean, nullable=False, default=False),
    Index("ix_labels_sensor_ts", "sensor_id", "start_ts"),
    Index("ix_labels_annotation", "annotation_id"),
    Index("ix_labels_recorded_at", "recorded_at"),
)

labelled_predictions = Table(
    "labelled_predictions",
    metadata,
    Column("reading_id", String(32), primary_key=True),
    Column("sensor_id", String(128), nullable=False),
    Column("event_ts", Timestamp, nullable=False),
    Column("probability", Float, nullable=False),
    Column("predicted", Integer, nullable=False),
    Column("model_version", String(64), nullable=False),
    # The label the reading has (1 fault, 0 normal; null: none, or unsure), kept up to date as
    # labels arrive (driftline.labels.scoring), so a pass scores without joining again.
    Column("actual", Integer, nullable=True),
    # served: serving's answer (predictions topic); streamed: the labeler's own score of a
    # reading from the valid-readings topic. A served one replaces a streamed one.
    Column("source", String(16), nullable=False, server_default="served"),
    Index("ix_labelled_predictions_sensor_ts", "sensor_id", "event_ts"),
    Index("ix_labelled_predictions_scored", "model_version", "actual", "event_ts"),
    Index("ix_labelled_predictions_event_ts", "event_ts"),  # pruning
)

# How far the labelled predictions' ``actual`` has been brought: ``labels`` is the newest
# ``recorded_at`` of labels applied (driftline.labels.scoring).
label_marks = Table(
    "label_marks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("mark", Timestamp, nullable=False),
)


def create_label_tables(engine: Engine) -> None:
    """Create or upgrade the tables: the raw store's migrations, which include these (processes
    starting together take turns)."""
    from driftline.store.migrations import migrate

    migrate(engine)


class LabelStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_candidates(self, candidates: Sequence[TaskCandidate], now: datetime) -> None:
        rows = [
            {
                "task_key": c.key,
                "kind": c.kind,
                "sensor_id": c.sensor_id,
                "start_ts": naive_utc(c.start),
                "end_ts": naive_utc(c.end),
                "reason": c.reason,
                "model_version": c.model_version,
                "created_at": naive_utc(now),
                "ls_task_id": None,
            }
            for c in candidates
        ]
        insert_ignoring_duplicates(self.engine, label_tasks, rows)

    def pending_tasks(self, limit: int) -> list[TaskCandidate]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(label_tasks)
                .where(label_tasks.c.ls_task_id.is_(None))
                .order_by(label_tasks.c.created_at)
                .limit(limit)
            ).mappings()
            return [
                TaskCandidate(
                    r["kind"],
                    r["sensor_id"],
                    as_utc(r["start_ts"]),
                    as_utc(r["end_ts"]),
                    r["reason"],
                    r["model_version"],
                )
                for r in rows
            ]

    def mark_sent(self, task_ids: dict[str, int]) -> None:
        with self.engine.begin() as conn:
            for key, ls_id in task_ids.items():
                conn.execute(
                    update(label_tasks)
                    .where(label_tasks.c.task_key == key)
                    .values(ls_task_id=ls_id)
                )

    def task_keys(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(label_tasks.c.task_key)).scalars())

    def is_known_task(self, task_key: str) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(label_tasks.c.task_key).where(label_tasks.c.task_key == task_key)
            ).first()
            return found is not None

    def record(self, rows: Sequence[LabelRow], now: datetime) -> int:
        """Store an annotation version's rows; returns how many were new. A newer version of an
        annotation replaces the older one's rows."""
        if not rows:
            return 0
        annotation_id, version = rows[0].annotation_id, rows[0].annotation_version
        with self.engine.begin() as conn:
            known = set(
                conn.execute(
                    select(labels.c.label_id).where(
                        labels.c.label_id.in_([r.label_id for r in rows])
                    )
                ).scalars()
            )
            conn.execute(
                delete(labels).where(
                    and_(
                        labels.c.annotation_id == annotation_id,
                        labels.c.annotation_version != version,
                    )
                )
            )
        new = [self._row(r, now) for r in rows if r.label_id not in known]
        insert_ignoring_duplicates(self.engine, labels, new)
        return len(new)

    @staticmethod
    def _row(r: LabelRow, now: datetime) -> dict[str, Any]:
        row = asdict(r)
        row["start_ts"] = naive_utc(row.pop("start"))
        row["end_ts"] = naive_utc(row.pop("end"))
        row["annotated_at"] = naive_utc(r.annotated_at)
        row["recorded_at"] = naive_utc(now)
        row["published"] = False
        return row

    def unpublished(self, limit: int = 1000) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(labels).where(labels.c.published.is_(False)).limit(limit)
            ).mappings()
            return [dict(r) for r in rows]

    def mark_published(self, label_ids: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(labels).where(labels.c.label_id.in_(list(label_ids))).values(published=True)
            )

    def all_labels(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [
                dict(r) for r in conn.execute(select(labels).order_by(labels.c.start_ts)).mappings()
            ]

    def newest_model_version(self) -> str | None:
        """The model version of the newest prediction seen: the production model."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(labelled_predictions.c.model_version)
                .order_by(labelled_predictions.c.event_ts.desc())
                .limit(1)
            ).scalar()
