"""The labels tables (label_tasks, labels, labelled_predictions; driftline.labels.store).

Each table is created only if missing, so a database whose tables the labeler made with
``create_all`` before this revision upgrades from here as it is.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftline.store.migrations.parts import Timestamp, create_table_if_missing

revision = "0003"
down_revision = "0002"

TABLES = ("label_tasks", "labels", "labelled_predictions")


def upgrade() -> None:
    create_table_if_missing(
        "label_tasks",
        sa.Column("task_key", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sensor_id", sa.String(128), nullable=False),
        sa.Column("start_ts", Timestamp, nullable=False),
        sa.Column("end_ts", Timestamp, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("ls_task_id", sa.BigInteger, nullable=True),
        indexes={"ix_label_tasks_ls_task_id": ["ls_task_id"]},
    )
    create_table_if_missing(
        "labels",
        sa.Column("label_id", sa.String(32), primary_key=True),
        sa.Column("task_key", sa.String(32), nullable=False),
        sa.Column("ls_task_id", sa.BigInteger, nullable=False),
        sa.Column("annotation_id", sa.BigInteger, nullable=False),
        sa.Column("annotation_version", sa.String(64), nullable=False),
        sa.Column("sensor_id", sa.String(128), nullable=False),
        sa.Column("start_ts", Timestamp, nullable=False),
        sa.Column("end_ts", Timestamp, nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("annotator", sa.String(255), nullable=False),
        sa.Column("annotated_at", Timestamp, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("recorded_at", Timestamp, nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
        indexes={
            "ix_labels_sensor_ts": ["sensor_id", "start_ts"],
            "ix_labels_annotation": ["annotation_id"],
        },
    )
    create_table_if_missing(
        "labelled_predictions",
        sa.Column("reading_id", sa.String(32), primary_key=True),
        sa.Column("sensor_id", sa.String(128), nullable=False),
        sa.Column("event_ts", Timestamp, nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("predicted", sa.Integer, nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        indexes={"ix_labelled_predictions_sensor_ts": ["sensor_id", "event_ts"]},
    )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
