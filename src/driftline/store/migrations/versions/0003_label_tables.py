"""The labels tables (label_tasks, labels, labelled_predictions; driftline.labels.store).

Each table is created only if missing, so a database whose tables the labeler made with
``create_all`` before this revision upgrades from here as it is.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
TABLES = ("label_tasks", "labels", "labelled_predictions")


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "label_tasks" not in existing:
        op.create_table(
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
        )
        op.create_index("ix_label_tasks_ls_task_id", "label_tasks", ["ls_task_id"])
    if "labels" not in existing:
        op.create_table(
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
        )
        op.create_index("ix_labels_sensor_ts", "labels", ["sensor_id", "start_ts"])
        op.create_index("ix_labels_annotation", "labels", ["annotation_id"])
    if "labelled_predictions" not in existing:
        op.create_table(
            "labelled_predictions",
            sa.Column("reading_id", sa.String(32), primary_key=True),
            sa.Column("sensor_id", sa.String(128), nullable=False),
            sa.Column("event_ts", Timestamp, nullable=False),
            sa.Column("probability", sa.Float, nullable=False),
            sa.Column("predicted", sa.Integer, nullable=False),
            sa.Column("model_version", sa.String(64), nullable=False),
        )
        op.create_index(
            "ix_labelled_predictions_sensor_ts", "labelled_predictions", ["sensor_id", "event_ts"]
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
