"""raw_readings keyed by the message's own identity, so no copy shadows a valid reading.

Before, rows were keyed by reading_id and the first copy of a reading won: a rejected copy
sent before the valid one took its place, and a message with an invalid seq counted as the
reading without one. Now the key is message_id (blake2b-128 of key and payload), reading_id
is an indexed column (null when the message has no valid identity), and payload_bytes /
payload_truncated record a payload stored cut short.

Existing rows are copied into the new table with their columns derived again from their
payload. Their message_id uses the stored key (UTF-8, at most 255 characters): for a key that
was longer or not UTF-8, a redelivery after the upgrade may add a second row.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftline.store.migrations.parts import message_columns, reading_key_columns
from driftline.store.raw_store import insert_ignoring_duplicates, key_columns
from driftline.streaming.messages import Message

revision = "0002"
down_revision = "0001"

CHUNK = 2000
COPIED = tuple(c.name for c in message_columns())


def new_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("message_id", sa.String(32), primary_key=True),
        sa.Column("reading_id", sa.String(32), nullable=True),
        *reading_key_columns(),
        *message_columns(),
        sa.Column("payload_bytes", sa.BigInteger, nullable=True),
        sa.Column("payload_truncated", sa.Boolean, nullable=False, default=False),
        mysql_charset="utf8mb4",
    )


def upgrade() -> None:
    bind = op.get_bind()
    columns = {c["name"] for c in sa.inspect(bind).get_columns("raw_readings")}
    if "message_id" in columns:
        return
    old = sa.table(
        "raw_readings",
        sa.column("reading_id", sa.String(32)),
        *(sa.column(c.name, c.type) for c in message_columns()),
    )
    new = new_table("raw_readings_next")
    new.create(bind)
    last: str | None = None
    while True:
        query = sa.select(old).order_by(old.c.reading_id).limit(CHUNK)
        if last is not None:
            query = query.where(old.c.reading_id > last)
        rows = bind.execute(query).all()
        if not rows:
            break
        last = rows[-1].reading_id
        insert_ignoring_duplicates(bind, new, [_row(r) for r in rows])
    op.drop_table("raw_readings")
    op.rename_table("raw_readings_next", "raw_readings")
    op.create_index("ix_raw_readings_reading_id", "raw_readings", ["reading_id"])
    op.create_index("ix_raw_readings_sensor_ts", "raw_readings", ["sensor_id", "event_ts"])
    op.create_index("ix_raw_readings_event_ts", "raw_readings", ["event_ts"])


def _row(r: sa.Row) -> dict[str, object]:
    payload = bytes(r.payload)
    key = None if r.msg_key is None else r.msg_key.encode("utf-8", "surrogatepass")
    k = key_columns(Message(r.kafka_topic, r.kafka_partition, r.kafka_offset, key, payload))
    return {
        **k.as_row(),
        **{c: getattr(r, c) for c in COPIED},
        "payload_bytes": len(payload),
        "payload_truncated": False,
    }


def downgrade() -> None:
    raise NotImplementedError("raw_readings cannot go back to one row per reading id")
