"""Batches loaded in bulk (LOAD DATA LOCAL INFILE on MariaDB, executemany on SQLite) are the
rows the row-by-row INSERT writes, byte for byte, hostile messages included; a redelivery adds
nothing; and a server that refuses local files gets the same rows by INSERT, with a log line."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from driftline.core.errors import StoreError
from driftline.store import bulk_load as raw_bulk
from driftline.store.raw_store import RawStore, make_engine
from driftline.store.tables import raw_readings
from driftline.streaming.messages import Message
from tests.integration.test_outages import PrivateMariaDB
from tests.unit.test_raw_batch import corpus

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 1, 2, 3, 4, 5, 600_000)


def stored(store: RawStore) -> list[tuple[object, ...]]:
    with store.engine.connect() as conn:
        query = sa.select(raw_readings).order_by(raw_readings.c.kafka_offset)
        return [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
            for r in conn.execute(query)
        ]


def clear(store: RawStore) -> None:
    with store.engine.begin() as conn:
        conn.execute(raw_readings.delete())


@pytest.fixture
def stores(database_url: str):  # type: ignore[no-untyped-def]
    bulk = RawStore.from_url(database_url, bulk_load=True)
    rowwise = RawStore.from_url(database_url)
    bulk.create_tables()
    rowwise.create_tables()
    yield bulk, rowwise
    bulk.engine.dispose()
    rowwise.engine.dispose()


def test_bulk_and_insert_store_the_same_rows(stores: tuple[RawStore, RawStore]) -> None:
    bulk, rowwise = stores
    assert bulk.bulk_load
    messages = corpus()
    for store in (rowwise, bulk):
        store.payload_limit = 1024
    rowwise.add_messages(messages, RECEIVED)
    by_insert = stored(rowwise)
    clear(rowwise)
    bulk.add_messages(messages, RECEIVED)
    by_load = stored(bulk)
    assert len(by_load) == len(messages)
    assert by_load == by_insert


def test_the_file_reads_the_same_whatever_the_sql_mode(mariadb_url: str) -> None:
    messages = corpus()
    rowwise = RawStore.from_url(mariadb_url)
    store = RawStore.from_url(mariadb_url, bulk_load=True)

    @sa.event.listens_for(store.engine, "connect")
    def _mode(dbapi_conn, _):  # type: ignore[no-untyped-def]
        with dbapi_conn.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES'")

    try:
        rowwise.create_tables()
        rowwise.add_messages(messages, RECEIVED)
        by_insert = stored(rowwise)
        clear(rowwise)
        store.create_tables()
        store.add_messages(messages, RECEIVED)
        assert stored(store) == by_insert
    finally:
        store.engine.dispose()
        rowwise.engine.dispose()


def test_a_redelivered_or_repeated_message_adds_no_row(stores: tuple[RawStore, RawStore]) -> None:
    bulk, _ = stores
    messages = corpus()[:200]
    bulk.add_messages(messages[:120])
    bulk.add_messages(messages[100:] + messages[150:160])  # overlaps, and repeats inside
    bulk.add_messages(messages)
    with bulk.engine.connect() as conn:
        rows = conn.execute(sa.select(raw_readings).order_by(raw_readings.c.kafka_offset)).all()
    assert [r.kafka_offset for r in rows] == [m.offset for m in messages]  # once each


def test_a_large_payload_of_special_bytes_is_stored_truncated(
    stores: tuple[RawStore, RawStore],
) -> None:
    bulk, rowwise = stores
    big = b'{"sensor_id": "pump-001", "pad": "' + b"\\\t\n\r\x00x" * (3 * 1024 * 1024) + b'"}'
    messages = [Message("raw", 0, 0, b"pump-001", big), Message("raw", 0, 1, None, b"{}")]
    bulk.add_messages(messages, RECEIVED)
    by_load = stored(bulk)
    clear(bulk)
    rowwise.add_messages(messages, RECEIVED)
    assert by_load == stored(rowwise)
    payload, size, truncated = by_load[0][10:13]
    assert truncated and size == len(big) and payload == big[: bulk.payload_limit]


def test_a_server_refusing_local_files_gets_the_rows_by_insert(
    mariadb_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A client that does not offer local files: the server refuses LOAD DATA LOCAL, as one
    # with local_infile OFF does.
    store = RawStore(make_engine(mariadb_url), bulk_load=True)
    try:
        store.create_tables()
        messages = corpus()[:50]
        with caplog.at_level(logging.WARNING, logger="driftline.store.raw_store"):
            store.add_messages(messages)
        assert not store.bulk_load
        assert "does not load local files" in caplog.text
        assert len(stored(store)) == 50
        store.add_messages(messages)  # and the next batches go by INSERT, duplicates ignored
        assert len(stored(store)) == 50
    finally:
        store.engine.dispose()


def test_local_infile_off_is_said_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A server of the test's own started with local_infile OFF (SET GLOBAL would change the
    # server every test shares).
    db = PrivateMariaDB(tmp_path, ("--local-infile=0",)).start()
    admin = sa.create_engine(f"{db.url}/mysql")
    with admin.begin() as conn:
        conn.exec_driver_sql("CREATE DATABASE driftline")
    admin.dispose()
    store = RawStore.from_url(f"{db.url}/driftline", bulk_load=True)
    try:
        with caplog.at_level(logging.WARNING, logger="driftline.store.raw_store"):
            store.create_tables()
        assert not store.bulk_load
        assert "local_infile is OFF" in caplog.text and "SET GLOBAL local_infile" in caplog.text
        store.add_messages(corpus()[:10])
        assert len(stored(store)) == 10
    finally:
        store.engine.dispose()
        db.stop()
        shutil.rmtree(db.rundir, ignore_errors=True)


def test_a_row_the_server_would_change_fails_the_load_and_stores_nothing(mariadb_url: str) -> None:
    store = RawStore.from_url(mariadb_url, bulk_load=True)
    try:
        store.create_tables()
        good = "\t".join(
            ["a" * 32, "\\N", "\\N", "\\N", "\\N", "raw", "0", "1", "\\N", "2", "0", "{}"]
        )
        bad = good.replace("a" * 32, "b" * 32).replace("\t1\t", "\tnot a number\t")
        data = f"{good}\n{bad}\n".encode()
        with pytest.raises(StoreError, match="1 warnings|2 warnings"), store.engine.begin() as conn:
            raw_bulk.load_data(conn, data, 2, "2026-01-01 00:00:00.000000")
        assert stored(store) == []  # rolled back
    finally:
        store.engine.dispose()
