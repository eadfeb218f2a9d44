"""A batch of raw-store rows in the form its database loads natively: a tab-separated file for
``LOAD DATA LOCAL INFILE`` on MariaDB/MySQL (sent from memory), tuples for ``executemany`` on
SQLite. The rows are those ``raw_rows.message_row`` makes, written column by column for the
whole batch (``raw_batch``); duplicates of a message already stored are skipped by its primary
key, the message identity, as by ``raw_store.insert_ignoring_duplicates``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from bisect import bisect_right
from collections.abc import Iterator
from datetime import datetime
from itertools import accumulate
from typing import Any, cast

from sqlalchemy import Connection, Engine, text

from driftline.core.errors import StoreError
from driftline.store.batch import BatchKeyColumns
from driftline.streaming.messages import Message

log = logging.getLogger(__name__)

COLUMNS = (
    "message_id",
    "reading_id",
    "sensor_id",
    "event_ts",
    "seq",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
    "msg_key",
    "payload",
    "payload_bytes",
    "payload_truncated",
)
# The LOAD DATA file's field order: the payload last, so each line is a short text prefix
# and the payload's own bytes after it (not decoded, formatted and encoded again).
FILE_COLUMNS = (*(c for c in COLUMNS if c != "payload"), "payload")
NULL = "\\N"  # LOAD DATA's NULL
# Server errors meaning "LOAD DATA LOCAL is not allowed here" (MySQL 8 and MariaDB spell it
# differently): the batch then goes in with INSERT, and so do the next ones.
LOCAL_INFILE_REFUSED = frozenset({1148, 2068, 3948, 4166})
_SPECIAL = ("\\", "\t", "\n", "\r", "\x00")
_SPECIAL_BYTES = tuple(c.encode() for c in _SPECIAL)
_PREFIX = "%s\t" * (len(FILE_COLUMNS) - 1)
_CACHE_LIMIT = 100_000  # entries
_CACHED_KEY_BYTES = 256  # longer keys are not remembered


def escape(field: str) -> str:
    """A text field as LOAD DATA reads it back (FIELDS ESCAPED BY '\\\\')."""
    if not any(c in field for c in _SPECIAL):
        return field
    return (
        field.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\x00", "\\0")
    )


def key_text(key: bytes) -> str:
    """The msg_key column of a key (as ``raw_rows.message_row`` writes it)."""
    return key.decode("utf-8", "backslashreplace")[:255]


class _Texts:
    """Remembers the column text of values that repeat from message to message (sensor ids,
    keys, topics): each is decoded and escaped once, not once per message."""

    def __init__(self) -> None:
        self.sensors: dict[str | None, str] = {None: NULL}
        self.keys: dict[bytes | None, str] = {None: NULL}
        self.topics: dict[str, str] = {}

    def sensor(self, sensor: str | None) -> str:
        found = self.sensors.get(sensor)
        if found is None:
            if len(self.sensors) > _CACHE_LIMIT:
                self.sensors = {None: NULL}
            # The file is latin-1 text standing for bytes: UTF-8 bytes, one character each.
            found = self.sensors[sensor] = _as_bytes_text(escape(sensor or ""))
        return found

    def key(self, key: bytes | None) -> str:
        found = self.keys.get(key)
        if found is None:
            found = _as_bytes_text(escape(key_text(key or b"")))
            if len(key or b"") <= _CACHED_KEY_BYTES:
                if len(self.keys) > _CACHE_LIMIT:
                    self.keys = {None: NULL}
                self.keys[key] = found
        return found

    def topic(self, topic: str) -> str:
        found = self.topics.get(topic)
        if found is None:
            found = self.topics[topic] = _as_bytes_text(escape(topic))
        return found


def _as_bytes_text(value: str) -> str:
    return value.encode("utf-8").decode("latin-1")


class LoadDataFile:
    """Writes batches as LOAD DATA files; keeps its caches across batches."""

    def __init__(self) -> None:
        self._texts = _Texts()

    def encode(self, messages: list[Message], keys: BatchKeyColumns, payload_limit: int) -> bytes:
        """The batch as LOAD DATA lines (``FILE_COLUMNS``): the text prefixes of all rows
        formatted and encoded together, each payload's bytes as they came (escaped only if
        they hold a special byte)."""
        texts = self._texts
        sensor, key, topic = texts.sensor, texts.key, texts.topic
        if not messages:
            return b""
        values = [m.value for m in messages]
        n = len(values)
        if None in values or max(map(len, values), default=0) > payload_limit:  # type: ignore[arg-type]
            payloads = [
                b"" if v is None else v if len(v) <= payload_limit else v[:payload_limit]
                for v in values
            ]
            sizes: list[int | str] = [NULL if v is None else len(v) for v in values]
            truncated = [0 if v is None or len(v) <= payload_limit else 1 for v in values]
        else:
            payloads = cast(list[bytes], values)
            sizes = list(map(len, payloads))
            truncated = [0] * n
        prefixes = map(
            _PREFIX.__mod__,
            zip(
                keys.message_id,
                [NULL if r is None else r for r in keys.reading_id],
                [sensor(s) for s in keys.sensor_id],
                [NULL if t is None else t for t in keys.event_ts],
                [NULL if s is None else s for s in keys.seq],
                [topic(m.topic) for m in messages],
                [m.partition for m in messages],
                [m.offset for m in messages],
                [key(m.key) for m in messages],
                sizes,
                truncated,
                strict=True,
            ),
        )
        # No prefix holds a newline (its fields are escaped): one encode, split back per row.
        parts: list[bytes] = [b"\n"] * (3 * n)
        parts[0::3] = "\n".join(prefixes).encode("latin-1").split(b"\n")
        parts[1::3] = _escaped(payloads)
        return b"".join(parts)


def escape_bytes(field: bytes) -> bytes:
    """``escape`` of bytes."""
    return (
        field.replace(b"\\", b"\\\\")
        .replace(b"\t", b"\\t")
        .replace(b"\n", b"\\n")
        .replace(b"\r", b"\\r")
        .replace(b"\x00", b"\\0")
    )


def _escaped(payloads: list[bytes]) -> list[bytes]:
    """The payloads as LOAD DATA fields: the few with a special byte escaped, found by a scan
    of the whole batch (one ``find`` per special byte and per payload that holds it)."""
    blob = b"".join(payloads)
    found: set[int] = set()
    ends: list[int] = []
    for special in _SPECIAL_BYTES:
        at = blob.find(special)
        if at < 0:
            continue
        ends = ends or list(accumulate(map(len, payloads)))
        while at >= 0:
            j = bisect_right(ends, at)
            found.add(j)
            at = blob.find(special, ends[j])
    if not found:
        return payloads
    out = list(payloads)
    for j in found:
        out[j] = escape_bytes(out[j])
    return out


def sqlite_rows(
    messages: list[Message], keys: BatchKeyColumns, received: str, payload_limit: int
) -> list[tuple[Any, ...]]:
    """The rows for ``SQLITE_INSERT`` (received_at: the column's text)."""
    values = [m.value for m in messages]
    return list(
        zip(
            keys.message_id,
            keys.reading_id,
            keys.sensor_id,
            keys.event_ts,
            keys.seq,
            [m.topic for m in messages],
            [m.partition for m in messages],
            [m.offset for m in messages],
            [None if m.key is None else key_text(m.key) for m in messages],
            [
                b"" if v is None else v if len(v) <= payload_limit else v[:payload_limit]
                for v in values
            ],
            [None if v is None else len(v) for v in values],
            [0 if v is None or len(v) <= payload_limit else 1 for v in values],
            [received] * len(values),
            strict=True,
        )
    )


SQLITE_INSERT = (
    "INSERT INTO raw_readings (message_id, reading_id, sensor_id, event_ts, seq, kafka_topic, "
    "kafka_partition, kafka_offset, msg_key, payload, payload_bytes, payload_truncated, "
    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


def insert_sqlite(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    conn.exec_driver_sql(SQLITE_INSERT, rows)


def local_infile_allowed(engine: Engine) -> bool:
    """Whether the MariaDB/MySQL server lets clients load their files (``local_infile``)."""
    with engine.connect() as conn:
        return bool(int(conn.execute(text("SELECT @@local_infile")).scalar_one()))


def received_text(received: datetime) -> str:
    """A naive UTC time as a DATETIME literal."""
    return received.strftime("%Y-%m-%d %H:%M:%S.%f")


def load_data(conn: Connection, data: bytes, rows: int, received: str) -> int:
    """LOAD DATA LOCAL INFILE of ``data`` (``rows`` lines) into raw_readings in ``conn``'s
    transaction; returns the rows added. Rows whose message is stored already are skipped;
    anything else the server had to change or leave out raises StoreError (the transaction
    is then rolled back by the caller)."""
    with _memory_file(data) as path:
        statement = (
            f"LOAD DATA LOCAL INFILE '{path}' IGNORE INTO TABLE raw_readings "  # nosec B608: a path of ours
            # Tab, backslash, newline in hex: the same whatever the sql_mode (a server with
            # NO_BACKSLASH_ESCAPES reads '\\t' as two characters).
            "CHARACTER SET utf8mb4 FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' "
            f"LINES TERMINATED BY X'0A' ({', '.join(FILE_COLUMNS)}) SET received_at = '{received}'"
        )
        # Through SQLAlchemy, so a lost connection is an OperationalError the error policy
        # knows (a dependency away) and the pool drops it.
        result = conn.exec_driver_sql(statement)
        added = int(result.rowcount)
        warnings = int(getattr(result.context.cursor, "warning_count", 0) or 0)
        if warnings != rows - added:  # each duplicate skipped is one warning (1062)
            shown = "; ".join(
                f"{code} {message}"
                for _, code, message in conn.exec_driver_sql("SHOW WARNINGS LIMIT 5").all()
            )
            raise StoreError(
                f"LOAD DATA of {rows} rows added {added} with {warnings} warnings: {shown}"
            )
    return added


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path the driver can open that holds ``data``: a memfd on Linux, else a temp file."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("driftline-raw-batch", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile(prefix="driftline-raw-batch-") as f:
        f.write(data)
        f.flush()
        yield f.name
