"""The raw store: every message as received, plus key columns, in SQL (MariaDB/MySQL or SQLite).

Rows are keyed by the message's own identity (a digest of its key and payload), and inserts
ignore keys already present: a redelivered message never makes a second row, and a different
message never takes the place of another. The reading identity is a column beside it, so a
rejected copy of a reading and the valid one are both kept; training validates every row and
keeps the valid ones. The schema is made and upgraded by Alembic (``driftline.store.migrations``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import InternalError, OperationalError, ProgrammingError

from driftline.core.errors import StoreUnavailable
from driftline.store import bulk_load as raw_bulk
from driftline.store.batch import BatchKeys
from driftline.store.rows import KeyColumns as KeyColumns  # re-exported, as the rest below
from driftline.store.rows import key_columns as key_columns
from driftline.store.rows import message_id as message_id
from driftline.store.rows import message_row, naive_utc
from driftline.store.tables import raw_readings
from driftline.streaming.messages import Message

log = logging.getLogger(__name__)


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
    engine: Engine | Connection, table: Table, rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT that skips rows whose primary/unique key exists already, in one transaction
    (on a connection: in its transaction)."""
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
    if isinstance(engine, Connection):
        engine.execute(stmt, list(rows))
        return
    with engine.begin() as conn:
        conn.execute(stmt, list(rows))


# Larger payloads are stored truncated (with their size and a flag): one row must fit the
# server's largest packet (MariaDB's max_allowed_packet, 16 MiB by default), escaped.
PAYLOAD_LIMIT = 4 * 1024 * 1024


class RawStore:
    """The raw store. ``bulk_load``: ``add_messages`` writes a batch as the database loads it
    natively (``raw_bulk``: LOAD DATA LOCAL INFILE on MariaDB/MySQL, which this store's
    connections then allow; executemany on SQLite); else row by row through SQLAlchemy's
    INSERT, the path kept as a baseline and as the fallback when the server refuses local
    files. Both write the same rows."""

    def __init__(
        self, engine: Engine, payload_limit: int = PAYLOAD_LIMIT, bulk_load: bool = False
    ) -> None:
        self.engine = engine
        self.payload_limit = payload_limit
        self.bulk_load = bulk_load
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self.sqlite_file = database if database and database != ":memory:" else None
        self._file_identity: tuple[int, int] | None = None  # (device, inode) once opened
        self._keys = BatchKeys()
        self._load_file = raw_bulk.LoadDataFile()

    def __enter__(self) -> RawStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.engine.dispose()

    @classmethod
    def from_url(
        cls, url: str, payload_limit: int = PAYLOAD_LIMIT, bulk_load: bool = False
    ) -> RawStore:
        mysql_like = url.startswith(("mysql", "mariadb"))
        # The client must agree to send local files too (PyMySQL's local_infile): only the
        # stores that load batches do, as a server could ask for any file the process reads.
        options = {"connect_args": {"local_infile": True}} if bulk_load and mysql_like else {}
        return cls(make_engine(url, **options), payload_limit, bulk_load)

    def create_tables(self) -> None:
        """Create or upgrade the schema to the newest revision (Alembic; services starting
        together take turns), and fit the payload limit to the server's packet size."""
        from driftline.store.migrations import migrate

        migrate(self.engine)
        if self.sqlite_file is not None:
            found = os.stat(self.sqlite_file)
            self._file_identity = (found.st_dev, found.st_ino)
        if self.engine.dialect.name in ("mysql", "mariadb"):
            with self.engine.connect() as conn:
                packet = int(conn.execute(text("SELECT @@max_allowed_packet")).scalar_one())
            # Escaped, a byte may take two in the statement; and room for the other columns.
            self.payload_limit = min(self.payload_limit, packet // 2 - 64 * 1024)
            if self.bulk_load and self.engine.dialect.driver != "pymysql":
                self.bulk_load = False
                log.warning(
                    "raw store: LOAD DATA is written for PyMySQL, not %s: batches are written "
                    "with INSERT",
                    self.engine.dialect.driver,
                )
            elif self.bulk_load and not raw_bulk.local_infile_allowed(self.engine):
                self._refuse_local_files("its local_infile is OFF")

    def _refuse_local_files(self, why: str) -> None:
        self.bulk_load = False
        log.warning(
            "raw store: the database server does not load local files (%s): batches are "
            "written with INSERT, several times slower. To load them with LOAD DATA LOCAL "
            "INFILE, SET GLOBAL local_infile = 1 (or start the server with --local-infile=1)",
            why,
        )

    def add_messages(self, messages: Sequence[Message], received_at: datetime | None = None) -> int:
        """Land a batch of messages (one transaction); returns how many were offered."""
        received = naive_utc(received_at or datetime.now(UTC))
        self.check_file()
        if self.bulk_load and messages:
            self._add_in_bulk(list(messages), received)
        else:
            rows = [message_row(m, received, self.payload_limit) for m in messages]
            insert_ignoring_duplicates(self.engine, raw_readings, rows)
        # Written into the file that is there still? Else the batch must not be acknowledged.
        self.check_file()
        return len(messages)

    def _add_in_bulk(self, messages: list[Message], received: datetime) -> None:
        keys = self._keys.columns(messages)
        when = raw_bulk.received_text(received)
        name = self.engine.dialect.name
        if name == "sqlite":
            rows = raw_bulk.sqlite_rows(messages, keys, when, self.payload_limit)
            with self.engine.begin() as conn:
                raw_bulk.insert_sqlite(conn, rows)
            return
        if name not in ("mysql", "mariadb") or self.engine.dialect.driver != "pymysql":
            rows_ = [message_row(m, received, self.payload_limit) for m in messages]
            insert_ignoring_duplicates(self.engine, raw_readings, rows_)
            return
        data = self._load_file.encode(messages, keys, self.payload_limit)
        try:
            with self.engine.begin() as conn:
                raw_bulk.load_data(conn, data, len(messages), when)
        except (OperationalError, ProgrammingError, InternalError) as exc:
            code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
            if code not in raw_bulk.LOCAL_INFILE_REFUSED:
                raise
            self._refuse_local_files(f"it refused LOAD DATA LOCAL INFILE: {exc.orig}")
            fallback = [message_row(m, received, self.payload_limit) for m in messages]
            insert_ignoring_duplicates(self.engine, raw_readings, fallback)

    def check_file(self) -> None:
        """Raise StoreUnavailable if the SQLite file this store opened was removed or replaced:
        what is written now would go to a file nobody will read again."""
        if self.sqlite_file is None or self._file_identity is None:
            return
        try:
            found = os.stat(self.sqlite_file)
        except FileNotFoundError:
            what = "removed"
        else:
            if (found.st_dev, found.st_ino) == self._file_identity:
                return
            what = "replaced by another file"
        message = (
            f"the SQLite file {self.sqlite_file} was {what} while this service ran: nothing is "
            "stored or acknowledged until the service is restarted (it then opens the file "
            "that is there, and its unacknowledged messages are delivered again)"
        )
        raise StoreUnavailable(message)

    def ping(self) -> None:
        """Raise unless the database answers a trivial query (a readiness check)."""
        self.check_file()
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(raw_readings)).scalar_one())

    def message_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(raw_readings.c.message_id)).scalars())

    def reading_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            query = select(raw_readings.c.reading_id).where(raw_readings.c.reading_id.is_not(None))
            return set(conn.execute(query).scalars())
