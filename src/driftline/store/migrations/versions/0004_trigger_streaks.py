"""trigger_decisions keeps what a restarted trigger needs to restore its streaks: each drift
decision's streak (the sensor's drifted windows in a row after it), the window's time range,
a firing's sensors (JSON), and an index by sensor. Rows of before have them null and are not
restored from (the streaks then start again, as they did before this revision).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from driftline.store.migrations.parts import Timestamp

revision = "0004"
down_revision = "0003"

COLUMNS: dict[str, Any] = {
    "streak": sa.Integer(),
    "window_start": Timestamp,
    "window_end": Timestamp,
    "fired_sensors": sa.Text(),
}
INDEX = "ix_trigger_decisions_sensor_id"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    have = {c["name"] for c in inspector.get_columns("trigger_decisions")}
    for name, kind in COLUMNS.items():
        if name not in have:
            op.add_column("trigger_decisions", sa.Column(name, kind, nullable=True))
    if INDEX not in {i["name"] for i in inspector.get_indexes("trigger_decisions")}:
        op.create_index(INDEX, "trigger_decisions", ["sensor_id", "id"])


def downgrade() -> None:
    with op.batch_alter_table("trigger_decisions") as batch:
        batch.drop_index(INDEX)
        for name in COLUMNS:
            batch.drop_column(name)
