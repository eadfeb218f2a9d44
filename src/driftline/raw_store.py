"""The raw store: every message as received, plus key columns, in SQL (MariaDB/MySQL or SQLite).

Rows are keyed by the reading's identity, and inserts ignore keys already present, so a
redelivered message never makes a second row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import OperationalError

from driftline.messages import Message
from driftline.parsing import load_json, parse_timestamp, valid_sensor_id, valid_seq
from driftline.records import as_utc, reading_id

metadata = MetaData()

# Microsecond precision on MySQL/MariaDB (its DATETIME defaults to whole seconds).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Payload = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

raw_readings = Table(
    "raw_readings",
    metadata,
    Column("reading_id", String(32), primary_key=True),
    Column("sensor_id", String(128), nullable=True),
    Column("event_ts", Timestamp, nullable=True),
    Column("seq", BigInteger, nullable=True),
    Column("received_at", Timestamp, nullable=False),
    Column("kafka_topic", String(249), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("msg_key", String(255), nullable=True),
    Column("payload", Payload, nullable=False),
    Index("ix_raw_readings_sensor_ts", "sensor_id", "event_ts"),
    Index("ix_raw_readings_event_ts", "event_ts"),
)

trigger_decisions = Table(
    "trigger_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decided_at", Timestamp, nullable=False),
    Column("drift_event_id", String(32), nullable=False, unique=True),
    Column("sensor_id", String(128), nullable=False),
    Column("drift_share", Float, nullable=False),
    Column("fired", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", String(32), nullable=True),
)

retrain_runs = Table(
    "retrain_runs",
    metadata,
    Column("request_id", String(32), primary_key=True),
    Column("requested_at", Timestamp, nullable=False),
    Column("launcher", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("request", Text, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    Column("detail", Text, nullable=True),
)


promotion_decisions = Table(
    "promotion_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("decided_at", Timestamp, nullable=False),
    Column("model_name", String(255), nullable=False),
    Column("challenger_version", String(64), nullable=False),
    Column("champion_version", String(64), nullable=True),
    Column("metric", String(64), nullable=False),
    Column("challenger_score", Float, nullable=True),
    Column("champion_score", Float, nullable=True),
    Column("promoted", Boolean, nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", String(32), nullable=True),
)


def naive_utc(ts: datetime) -> datetime:
    """SQL DATETIME columns hold naive UTC."""
    return as_utc(ts).replace(tzinfo=None)


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600, **kwargs)


def insert_ignoring_duplicates(
    engine: Engine, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT that skips rows whose primary/unique key exists already, in one transaction."""
    if not rows:
        return
    name = engine.dialect.name
    if name in ("mysql", "mariadb"):
        stmt: Any = mysql.insert(table)
        key = next(iter(table.primary_key.columns)).name
        stmt = stmt.on_duplicate_key_update({key: stmt.inserted[key]})
    elif name == "sqlite":
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    elif name == "postgresql":
        from sqlalchemy.dialects import postgresql

        stmt = postgresql.insert(table).on_conflict_do_nothing()
    else:
        stmt = insert(table)
    with engine.begin() as conn:
        conn.execute(stmt, list(rows))


@dataclass(frozen=True, slots=True)
class KeyColumns:
    reading_id: str
    sensor_id: str | None
    event_ts: datetime | None
    seq: int | None


def key_columns(message: Message) -> KeyColumns:
    """Identity and key columns of a message, as far as it can be read.

    A reading is identified by sensor, time and sequence number; a message that does not
    have them is identified by its place in the log, so a redelivery still maps to one row.
    """
    sensor_id = ts = seq = None
    try:
        doc = load_json(message.value or b"")
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, dict):
        # The same field rules as the validator, so both derive the same reading id.
        sensor_id = valid_sensor_id(doc.get("sensor_id"))
        ts = parse_timestamp(doc.get("ts"))
        seq = valid_seq(doc.get("seq"))
    if sensor_id is not None and ts is not None:
        rid = reading_id(sensor_id, ts, seq)
    else:
        place = f"{message.topic}|{message.partition}|{message.offset}"
        rid = hashlib.blake2b(place.encode(), digest_size=16).hexdigest()
    return KeyColumns(rid, sensor_id, ts, seq)


class RawStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> RawStore:
        return cls(make_engine(url))

    def create_tables(self) -> None:
        """Create the tables that are missing. Services starting together race between
        create_all's check and its CREATE TABLE; the loser finds that table made and tries
        again. Each lost race means one table fewer to make, so this ends."""
        attempts = len(metadata.tables) + 1
        for attempt in range(attempts):
            try:
                metadata.create_all(self.engine)
                return
            except OperationalError as exc:
                if "already exists" not in str(exc.orig) or attempt == attempts - 1:
                    raise

    def add_messages(self, messages: Sequence[Message], received_at: datetime | None = None) -> int:
        """Land a batch of messages (one transaction); returns how many were offered."""
        received = naive_utc(received_at or datetime.now(UTC))
        rows = []
        for m in messages:
            k = key_columns(m)
            rows.append(
                {
                    "reading_id": k.reading_id,
                    "sensor_id": k.sensor_id,
                    "event_ts": naive_utc(k.event_ts) if k.event_ts else None,
                    "seq": k.seq,
                    "received_at": received,
                    "kafka_topic": m.topic,
                    "kafka_partition": m.partition,
                    "kafka_offset": m.offset,
                    "msg_key": m.key_text[:255] if m.key is not None else None,
                    "payload": m.value or b"",
                }
            )
        insert_ignoring_duplicates(self.engine, raw_readings, rows)
        return len(rows)

    def ping(self) -> None:
        """Raise unless the database answers a trivial query (a readiness check)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(raw_readings)).scalar_one())

    def reading_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(raw_readings.c.reading_id)).scalars())
