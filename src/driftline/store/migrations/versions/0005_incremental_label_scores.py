"""Labelled scores kept incrementally: ``labelled_predictions.actual`` (the reading's label, 1
fault, 0 normal, null none), an index to take a model version's newest labelled readings, the
``label_marks`` table (how far labels have been applied), an index on ``event_ts`` for pruning and
one on ``labels.recorded_at``.

Existing predictions get their ``actual`` on the labeler's next pass: the ``labels`` mark starts
unset, so every stored label is applied once. Each step is skipped when already there (a labeler
that made the tables with ``create_all`` made them whole).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftline.store.migrations.parts import Timestamp, create_table_if_missing

revision = "0005"
down_revision = "0004"

SCORED = "ix_labelled_predictions_scored"
EVENT_TS = "ix_labelled_predictions_event_ts"
RECORDED = "ix_labels_recorded_at"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    columns = {c["name"] for c in inspector.get_columns("labelled_predictions")}
    if "actual" not in columns:
        op.add_column("labelled_predictions", sa.Column("actual", sa.Integer, nullable=True))
    indexes = {i["name"] for i in inspector.get_indexes("labelled_predictions")}
    if SCORED not in indexes:
        op.create_index(SCORED, "labelled_predictions", ["model_version", "actual", "event_ts"])
    if EVENT_TS not in indexes:
        op.create_index(EVENT_TS, "labelled_predictions", ["event_ts"])
    if RECORDED not in {i["name"] for i in inspector.get_indexes("labels")}:
        op.create_index(RECORDED, "labels", ["recorded_at"])
    create_table_if_missing(
        "label_marks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("mark", Timestamp, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("label_marks")
    op.drop_index(RECORDED, table_name="labels")
    with op.batch_alter_table("labelled_predictions") as batch:
        batch.drop_index(SCORED)
        batch.drop_index(EVENT_TS)
        batch.drop_column("actual")
