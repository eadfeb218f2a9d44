"""Pieces the raw store's revisions share: column types, column sets, and "create a table only
if it is missing".

Revisions are history: the schema each one makes must never change. So nothing here changes
once a revision uses it; a revision that needs something else adds a piece of its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Microsecond precision on MySQL/MariaDB (its DATETIME defaults to whole seconds).
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Payload = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def reading_key_columns() -> list[sa.Column[object]]:
    """raw_readings' columns read from the payload (null when it does not say), as 0001 made
    them and 0002 kept them."""
    return [
        sa.Column("sensor_id", sa.String(128), nullable=True),
        sa.Column("event_ts", Timestamp, nullable=True),
        sa.Column("seq", sa.BigInteger, nullable=True),
    ]


def message_columns() -> list[sa.Column[object]]:
    """raw_readings' columns of the Kafka message as received, as 0001 made them and 0002
    kept them (copying them over)."""
    return [
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("kafka_topic", sa.String(249), nullable=False),
        sa.Column("kafka_partition", sa.Integer, nullable=False),
        sa.Column("kafka_offset", sa.BigInteger, nullable=False),
        sa.Column("msg_key", sa.String(255), nullable=True),
        sa.Column("payload", Payload, nullable=False),
    ]


def create_table_if_missing(
    name: str, *columns: sa.Column[object], indexes: dict[str, list[str]] | None = None
) -> None:
    """Create table ``name`` with its indexes unless the database has it: a store made by the
    old ``create_all`` (partly or wholly) upgrades as it is, without being stamped first."""
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *columns)
    for index, indexed in (indexes or {}).items():
        op.create_index(index, name, indexed)
