"""Training data from the raw store: valid readings of a time range, read on a read-only connection.

Every row is parsed and validated with the same ``ReadingValidator`` the live validator uses,
so training sees exactly what serving would have accepted; rows that fail are counted by check
and left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.pool import NullPool

from driftline.core.profile import Profile, TimestampPolicy, load_profile
from driftline.core.records import ValidReading
from driftline.core.settings import Settings
from driftline.store.raw_store import make_engine, naive_utc
from driftline.store.tables import raw_readings
from driftline.streaming.messages import Message
from driftline.training.sql_guard import check_select
from driftline.validation.batch import ReadingValidator
from driftline.validation.parsing import PLAUSIBLE_FROM
from driftline.validation.schema import READING_ID, SENSOR_ID, TS

LABEL = "label"
CHUNK_ROWS = 5000


class LoadReport(BaseModel):
    model_config = ConfigDict(frozen=True)
    rows_read: int
    rows_valid: int
    invalid_by_check: dict[str, int]

    @property
    def rows_invalid(self) -> int:
        return self.rows_read - self.rows_valid


def read_only_engine(url: str) -> Engine:
    """An engine whose every connection refuses writes (MariaDB/MySQL and SQLite)."""
    # NullPool: the read-only session state must not outlive this engine's own use.
    engine = make_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _read_only(dbapi_conn: Any, _: Any) -> None:
        cur = dbapi_conn.cursor()
        if engine.dialect.name == "sqlite":
            cur.execute("PRAGMA query_only=ON")
        elif engine.dialect.name in ("mysql", "mariadb"):
            cur.execute("SET SESSION TRANSACTION READ ONLY")
        cur.close()

    return engine


@contextmanager
def read_only_connection(url: str) -> Iterator[Connection]:
    engine = read_only_engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def load_readings(
    settings: Settings,
    start: datetime | None,
    end: datetime | None,
    sensors: list[str] | None,
) -> tuple[pd.DataFrame, LoadReport]:
    """Valid readings with ``start <= ts <= end`` (either bound optional) of ``sensors`` (all if
    None), sorted by sensor and time: reading_id, sensor_id, ts, label (0/1, NaN if unknown)
    and one float column per measurement."""
    profile = load_profile(settings.profile_path)
    validator = ReadingValidator(
        _archive_profile(profile),
        max_message_bytes=settings.max_message_bytes,
        dedup_capacity=0,
        stage="preprocess",
        clock=lambda: datetime.now(UTC),
    )
    # Only rows with a reading identity can be valid readings; of several valid copies of one
    # reading (different bytes, same sensor, ts and seq) the first received is kept, as the
    # validator keeps the first it sees.
    query = (
        select(raw_readings.c.reading_id, raw_readings.c.payload)
        .where(raw_readings.c.reading_id.is_not(None))
        .order_by(
            raw_readings.c.sensor_id,
            raw_readings.c.event_ts,
            raw_readings.c.reading_id,
            raw_readings.c.received_at,
            raw_readings.c.kafka_partition,
            raw_readings.c.kafka_offset,
        )
    )
    if start is not None:
        query = query.where(raw_readings.c.event_ts >= naive_utc(start))
    if end is not None:
        query = query.where(raw_readings.c.event_ts <= naive_utc(end))
    if sensors is not None:
        query = query.where(raw_readings.c.sensor_id.in_(sensors))

    frames = [readings_frame([], profile.features)]
    failed: Counter[str] = Counter()
    rows_read = 0
    with read_only_connection(settings.resolved_readonly_url) as conn:
        result = conn.execution_options(stream_results=True).execute(query)
        for chunk in result.partitions(CHUNK_ROWS):
            rows_read += len(chunk)
            verdict = validator.validate(_messages(chunk, rows_read - len(chunk)))
            valid = [reading for _, reading in verdict.valid]
            frames.append(readings_frame(valid, profile.features))
            for _, letter in verdict.invalid:
                failed.update({reason.check for reason in letter.reasons})
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.sort_values([SENSOR_ID, TS, READING_ID], kind="mergesort", ignore_index=True)
    frame = frame.drop_duplicates(READING_ID, ignore_index=True)
    report = LoadReport(
        rows_read=rows_read, rows_valid=len(frame), invalid_by_check=dict(sorted(failed.items()))
    )
    return frame, report


def readings_frame(readings: Sequence[ValidReading], features: list[str]) -> pd.DataFrame:
    """Valid readings as a frame with the columns of ``load_readings``, in the given order."""
    return pd.DataFrame(
        {
            READING_ID: pd.Series([r.reading_id for r in readings], dtype=object),
            SENSOR_ID: pd.Series([r.sensor_id for r in readings], dtype=object),
            TS: pd.to_datetime([r.ts for r in readings], utc=True).as_unit("us"),
            LABEL: np.array(
                [np.nan if r.label is None else r.label for r in readings], dtype="float64"
            ),
            **{f: np.array([r.values[f] for r in readings], dtype="float64") for f in features},
        }
    )


def run_select(settings: Settings, sql: str, max_rows: int = 100_000) -> pd.DataFrame:
    """An ad-hoc query on the raw store: one read-only SELECT, on a read-only connection."""
    checked = check_select(sql)
    with read_only_connection(settings.resolved_readonly_url) as conn:
        # exec_driver_sql: the text goes to the driver as checked, with no bind-parameter
        # parsing; only the "%" of format-style drivers (pymysql) needs escaping.
        if conn.dialect.paramstyle in ("format", "pyformat"):
            checked = checked.replace("%", "%%")
        result = conn.exec_driver_sql(checked)
        rows = result.fetchmany(max_rows)
        return pd.DataFrame(rows, columns=list(result.keys()))


def _archive_profile(profile: Profile) -> Profile:
    # History is old by definition: keep the future check against the real clock, but accept
    # any age (the profile's max_age is about live data arriving late).
    policy = TimestampPolicy(
        max_future_seconds=profile.timestamps.max_future_seconds,
        max_age_seconds=(datetime.now(UTC) - PLAUSIBLE_FROM).total_seconds() + 86_400,
    )
    return profile.model_copy(update={"timestamps": policy})


def _messages(rows: Sequence[Any], first_offset: int) -> list[Message]:
    return [
        Message(
            topic=raw_readings.name,
            partition=0,
            offset=first_offset + i,
            key=None,
            value=bytes(row.payload),
        )
        for i, row in enumerate(rows)
    ]
