"""The schema as services created it before migrations: raw_readings keyed by reading_id.

Each table is created only if missing, so a store made by the old ``create_all`` (partly or
wholly) upgrades from here without being stamped first.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftline.store.migrations.parts import (
    Timestamp,
    create_table_if_missing,
    message_columns,
    reading_key_columns,
)

revision = "0001"
down_revision = None


def upgrade() -> None:
    create_table_if_missing(
        "raw_readings",
        sa.Column("reading_id", sa.String(32), primary_key=True),
        *reading_key_columns(),
        *message_columns(),
        indexes={
            "ix_raw_readings_sensor_ts": ["sensor_id", "event_ts"],
            "ix_raw_readings_event_ts": ["event_ts"],
        },
    )
    create_table_if_missing(
        "trigger_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("decided_at", Timestamp, nullable=False),
        sa.Column("drift_event_id", sa.String(32), nullable=False, unique=True),
        sa.Column("sensor_id", sa.String(128), nullable=False),
        sa.Column("drift_share", sa.Float, nullable=False),
        sa.Column("fired", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
    )
    create_table_if_missing(
        "retrain_runs",
        sa.Column("request_id", sa.String(32), primary_key=True),
        sa.Column("requested_at", Timestamp, nullable=False),
        sa.Column("launcher", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    create_table_if_missing(
        "promotion_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("decided_at", Timestamp, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("challenger_version", sa.String(64), nullable=False),
        sa.Column("champion_version", sa.String(64), nullable=True),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("challenger_score", sa.Float, nullable=True),
        sa.Column("champion_score", sa.Float, nullable=True),
        sa.Column("promoted", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
    )


def downgrade() -> None:
    for table in ("promotion_decisions", "retrain_runs", "trigger_decisions", "raw_readings"):
        op.drop_table(table)
