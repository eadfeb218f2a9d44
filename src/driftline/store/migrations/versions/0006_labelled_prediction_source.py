"""Where a labelled prediction came from: ``labelled_predictions.source``, ``served`` (serving
answered the reading and published the prediction) or ``streamed`` (the labeler scored the
reading from the valid-readings topic with the champion it holds). Rows stored before are
served ones: they came from the predictions topic.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("labelled_predictions")}
    if "source" not in columns:
        op.add_column(
            "labelled_predictions",
            sa.Column("source", sa.String(16), nullable=False, server_default="served"),
        )


def downgrade() -> None:
    with op.batch_alter_table("labelled_predictions") as batch:
        batch.drop_column("source")
