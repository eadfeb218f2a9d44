"""The tables of the raw store and the services' ledgers (SQLAlchemy Core, one ``metadata``:
``RawStore.create_tables`` and the Alembic migrations both read it)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

metadata = MetaData()

# Microsecond precision on MySQL/MariaDB (its DATETIME defaults to whole seconds).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Payload = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

raw_readings = Table(
    "raw_readings",
    metadata,
    Column("message_id", String(32), primary_key=True),
    Column("reading_id", String(32), nullable=True),
    Column("sensor_id", String(128), nullable=True),
    Column("event_ts", Timestamp, nullable=True),
    Column("seq", BigInteger, nullable=True),
    Column("received_at", Timestamp, nullable=False),
    Column("kafka_topic", String(249), nullable=False),
    Column("kafka_partition", Integer, nullable=False),
    Column("kafka_offset", BigInteger, nullable=False),
    Column("msg_key", String(255), nullable=True),
    Column("payload", Payload, nullable=False),
    Column("payload_bytes", BigInteger, nullable=True),
    Column("payload_truncated", Boolean, nullable=False, default=False),
    Index("ix_raw_readings_reading_id", "reading_id"),
    Index("ix_raw_readings_sensor_ts", "sensor_id", "event_ts"),
    Index("ix_raw_readings_event_ts", "event_ts"),
    mysql_charset="utf8mb4",
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
    # Drift decisions: the sensor's streak after the decision and the window's time range; a
    # firing's sensors (JSON), whose streaks it consumed. A restart restores the streaks.
    Column("streak", Integer, nullable=True),
    Column("window_start", Timestamp, nullable=True),
    Column("window_end", Timestamp, nullable=True),
    Column("fired_sensors", Text, nullable=True),
    Index("ix_trigger_decisions_sensor_id", "sensor_id", "id"),
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
    Column("attempt", Integer, nullable=False, server_default="0"),  # relaunch number
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
