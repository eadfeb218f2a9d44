"""retrain_runs.attempt: a run's relaunch number (0 for a first launch), which the trigger read
from the request's reason text ("relaunch <n> of <id>: ...") before. Runs of before get it
from that text here, once.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
import re

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

RELAUNCH = re.compile(r"relaunch (\d+) of ")


def upgrade() -> None:
    bind = op.get_bind()
    if "attempt" in {c["name"] for c in sa.inspect(bind).get_columns("retrain_runs")}:
        return
    op.add_column(
        "retrain_runs", sa.Column("attempt", sa.Integer, nullable=False, server_default="0")
    )
    runs = sa.table(
        "retrain_runs", sa.column("request_id"), sa.column("request"), sa.column("attempt")
    )
    relaunches = bind.execute(
        sa.select(runs.c.request_id, runs.c.request).where(runs.c.request.like("%relaunch %"))
    ).all()
    for request_id, request in relaunches:
        found = RELAUNCH.match(str(json.loads(request).get("reason", "")))
        if found:
            bind.execute(
                sa.update(runs)
                .where(runs.c.request_id == request_id)
                .values(attempt=int(found.group(1)))
            )


def downgrade() -> None:
    with op.batch_alter_table("retrain_runs") as batch:
        batch.drop_column("attempt")
