"""A batch's rows written in bulk are the rows ``raw_rows.message_row`` makes, message by
message: the same message and reading identities (``key_columns``), key columns, key text and
payload, for well-formed readings, every kind of malformed one, hostile bytes, and timestamps
in every form ``datetime.fromisoformat`` reads. The LOAD DATA file is read back here with the
server's escaping rules; the SQLite rows are compared as they are."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.core.profile import load_profile
from driftline.core.settings import DEFAULT_PROFILE
from driftline.simulate.inject import MALFORMED_KINDS, malform
from driftline.store.batch import BatchKeys, timestamp_text
from driftline.store.bulk_load import (
    COLUMNS,
    FILE_COLUMNS,
    LoadDataFile,
    escape,
    escape_bytes,
    sqlite_rows,
)
from driftline.store.rows import key_columns, message_row
from driftline.streaming.messages import Message
from tests.hostile_messages import hostile_message
from tests.unit.factories import NORMAL_VALUES

FEATURES = load_profile(DEFAULT_PROFILE).features
RECEIVED = datetime(2026, 1, 2, 3, 4, 5, 600_000)
LIMIT = 4 * 1024 * 1024


def doc(**fields: Any) -> dict[str, Any]:
    return (
        {"sensor_id": "pump-001", "ts": "2026-05-01T10:00:00.123456Z", "seq": 7}
        | {"values": dict(NORMAL_VALUES)}
        | fields
    )


def as_message(value: bytes | None, offset: int = 0, key: bytes | None = b"pump-001") -> Message:
    return Message("raw", offset % 4, offset, key, value)


TIMESTAMPS = [
    "2026-05-01T10:00:00.123456Z",
    "2026-05-01T10:00:00Z",
    "2026-05-01T10:00:00.123Z",
    "2026-05-01T10:00:00.1234567Z",
    "2026-05-01T10:00:00.123456+02:00",
    "2026-05-01T10:00:00.123456-00:30",
    "2026-05-01T10:00:00.123456",
    "2026-05-01 10:00:00.123456Z",
    "2026-05-01T10:00:00,123456Z",
    "2026-05-01T10:00:00.123456z",
    "20260501T100000.123456Z",
    "2026-W18-5T10:00:00.123456Z",
    "2026-05-01",
    "2026-02-30T10:00:00.123456Z",
    "2026-05-01T24:00:00.000000Z",
    "2026-05-01T23:59:60.000000Z",
    "0000-01-01T00:00:00.000000Z",
    "0001-01-01T00:00:00.000000+01:00",
    "1969-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00.000000Z",
    "2200-01-01T00:00:00.000000Z",
    "2200-01-01T00:00:00.000001Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-05-01T10:00:00.123456Z ",
    "２０２６-05-01T10:00:00.123456Z",
    "noon",
    "",
]

SPECIAL = [
    None,
    b"",
    b" ",
    b"null",
    b"[1, 2]",
    b'"a string"',
    b"garbage",
    b"\xef\xbb\xbf" + orjson.dumps(doc()),
    " ".join(["x"]).encode("utf-16"),
    orjson.dumps(doc()).replace(b"{", b"{\n  ", 1),
    orjson.dumps(doc()) + b"\n",
    orjson.dumps(doc(seq=None)),
    orjson.dumps({k: v for k, v in doc().items() if k != "seq"}),
    orjson.dumps(doc(seq=-1)),
    orjson.dumps(doc(seq=2**63 - 1)),
    orjson.dumps(doc(seq=2**63)),
    orjson.dumps(doc(seq=2**64 - 1)),
    orjson.dumps(doc(seq=True)),
    orjson.dumps(doc(seq=1.0)),
    orjson.dumps(doc(seq="1")),
    orjson.dumps(doc(sensor_id="")),
    orjson.dumps(doc(sensor_id="  ")),
    orjson.dumps(doc(sensor_id="x" * 128)),
    orjson.dumps(doc(sensor_id="x" * 129)),
    orjson.dumps(doc(sensor_id="pump\\001\ttab")),
    orjson.dumps(doc(sensor_id="pump-\U0001f600:é")),
    orjson.dumps(doc(sensor_id="pump\u202e")),
    orjson.dumps(doc(sensor_id=7)),
    orjson.dumps(doc(ts=1_700_000_000)),
    orjson.dumps(doc(pad="a:b:c")),
    orjson.dumps(doc()).replace(b'"seq":7', b'"seq":7,"seq":8'),
    orjson.dumps(doc()).replace(b'"seq":7', b'"seq":7,"x":"a:b","x":"c"'),
    orjson.dumps(doc()).replace(b'"pump-001"', b'"pump\\u002d001"'),
    orjson.dumps(doc()).replace(b'"pump-001"', b'"pump\\u003a001"'),
    orjson.dumps(doc()).replace(b'"seq":7', b'"seq":7, "big": 123456789012345678901234'),
    orjson.dumps(doc()).replace(b'"seq":7', b'"seq":7, "big": 1234567890123456789'),
    orjson.dumps(doc()).replace(b'"seq":7', b'"seq":7, "f": 1e300'),
    orjson.dumps(doc()).replace(b'"seq":7', b'"seq":7, "n": NaN'),
    orjson.dumps(doc(deep=[[[[[1]]]]])),
    orjson.dumps(doc()).replace(b'"seq":7', b'"seq":7, "deep": ' + b"[" * 64 + b"]" * 64),
    orjson.dumps(doc()).replace(b'"seq":7', b'"seq":7, "deep": ' + b"[" * 70 + b"]" * 70),
    orjson.dumps(doc(text="[[[[" * 20)),
    orjson.dumps(doc()).replace(b'"pump-001"', b'"pump-\\ud800"'),
    orjson.dumps(doc()) + b"\x00",
    b"\xff\xfe\x00 not utf-8 \\ \t \n \r",
    orjson.dumps(doc()).replace(b"pump-001", b"pump-\xff"),
]


def corpus() -> list[Message]:
    rng = random.Random(5)
    values: list[bytes | None] = list(SPECIAL)
    values += [orjson.dumps(doc(ts=ts)) for ts in TIMESTAMPS]
    values += [orjson.dumps(doc(ts=ts, seq=None)) for ts in TIMESTAMPS]
    for i in range(400):
        reading = doc(seq=i, ts=f"2026-05-01T10:{i // 60:02d}:{i % 60:02d}.{i:06d}Z")
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        values.append(malform(kind, reading, FEATURES, rng) if i % 3 else orjson.dumps(reading))
    keys = [
        b"pump-001",
        None,
        b"",
        b"\xff\xfe",
        b"a\tb\nc\\d\x00",
        "\U0001f600".encode(),
        b"k" * 300,
    ]
    return [as_message(v, i, keys[i % len(keys)]) for i, v in enumerate(values)]


def expected_keys(m: Message) -> tuple[Any, ...]:
    k = key_columns(m)
    ts = None if k.event_ts is None else timestamp_text(k.event_ts)
    return (k.message_id, k.reading_id, k.sensor_id, ts, k.seq)


def batch_keys(messages: list[Message]) -> list[tuple[Any, ...]]:
    c = BatchKeys().columns(messages)
    return list(zip(c.message_id, c.reading_id, c.sensor_id, c.event_ts, c.seq, strict=True))


def test_batch_key_columns_equal_each_messages_own() -> None:
    messages = corpus()
    assert batch_keys(messages) == [expected_keys(m) for m in messages]
    # Again with what the first batch left in the caches (the keys' hashed parts).
    keys = BatchKeys()
    first, again = keys.columns(messages), keys.columns(messages)
    assert again.message_id == first.message_id == [key_columns(m).message_id for m in messages]
    # The corpus has readings with ids, and messages of every other sort.
    ids = [k[1] for k in batch_keys(messages)]
    assert sum(i is not None for i in ids) > 200 and sum(i is None for i in ids) > 100


@pytest.mark.parametrize("ts", TIMESTAMPS)
def test_reading_ids_of_every_timestamp_form_are_the_existing_functions(ts: str) -> None:
    messages = [as_message(orjson.dumps(doc(ts=ts)), 0), as_message(orjson.dumps(doc(ts=ts)), 1)]
    assert batch_keys(messages) == [expected_keys(m) for m in messages]


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_hostile_messages_get_the_existing_key_columns(data: st.DataObject) -> None:
    ts = datetime(2026, 5, 1, tzinfo=UTC) + timedelta(microseconds=data.draw(st.integers(0, 10**9)))

    def reading() -> dict[str, Any]:  # a new one each time: hostile_message changes it
        return {
            "sensor_id": "pump-007",
            "ts": ts.isoformat(),
            "seq": 1,
            "values": dict(NORMAL_VALUES),
        }

    hostile = data.draw(hostile_message(reading(), 64 * 1024))
    good = as_message(orjson.dumps(reading()), 1)
    messages = [as_message(hostile.value, 0, hostile.key), good]
    assert batch_keys(messages) == [expected_keys(m) for m in messages]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["sensor_id", "ts", "seq", "values", "v", "x:y"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=False),
            st.text(max_size=30),
            st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat()),
            st.datetimes().map(lambda t: t.isoformat(timespec="microseconds") + "Z"),
        ),
    )
)
def test_generated_documents_get_the_existing_key_columns(fields: dict[str, Any]) -> None:
    messages = [as_message(json.dumps(fields).encode(), 0), as_message(orjson.dumps(doc()), 1)]
    assert batch_keys(messages) == [expected_keys(m) for m in messages]


# --- The rows ------------------------------------------------------------------------------

_ESCAPES = {"0": "\x00", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def read_load_data(data: bytes) -> list[dict[str, Any]]:
    """LOAD DATA's reading of a file (FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\', LINES
    TERMINATED BY '\\n'), as the server does it: fields as bytes, \\N as NULL."""
    rows = []
    text = data.decode("latin-1")
    assert text.endswith("\n")
    for line in text[:-1].split("\n"):
        fields = line.split("\t")  # an escaped tab or newline is "\\t", not a raw one
        assert len(fields) == len(FILE_COLUMNS), line[:200]
        row = {}
        for name, field in zip(FILE_COLUMNS, fields, strict=True):
            if field == "\\N":
                row[name] = None
                continue
            value = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), field, flags=re.DOTALL)
            row[name] = value.encode("latin-1")
        rows.append(row)
    return rows


def as_load_data_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A ``message_row`` as LOAD DATA fields (bytes; text in UTF-8)."""
    out: dict[str, Any] = {}
    for name in COLUMNS:
        value = row[name]
        if value is None:
            out[name] = None
        elif isinstance(value, bytes):
            out[name] = value
        elif isinstance(value, bool):
            out[name] = b"1" if value else b"0"
        elif isinstance(value, datetime):
            out[name] = timestamp_text(value).encode()
        else:
            out[name] = str(value).encode("utf-8")
    return out


@pytest.mark.parametrize("limit", [LIMIT, 40])
def test_the_load_data_file_reads_back_as_the_rows_message_row_makes(limit: int) -> None:
    messages = corpus()
    keys = BatchKeys().columns(messages)
    data = LoadDataFile().encode(messages, keys, limit)
    assert read_load_data(data) == [
        as_load_data_fields(message_row(m, RECEIVED, limit)) for m in messages
    ]


@pytest.mark.parametrize("limit", [LIMIT, 40])
def test_sqlite_rows_are_the_rows_message_row_makes(limit: int) -> None:
    messages = corpus()
    keys = BatchKeys().columns(messages)
    got = sqlite_rows(messages, keys, timestamp_text(RECEIVED), limit)
    for m, row in zip(messages, got, strict=True):
        want = message_row(m, RECEIVED, limit)
        names = (*COLUMNS, "received_at")
        expected = tuple(
            timestamp_text(want[n])
            if isinstance(want[n], datetime)
            else int(want[n])
            if isinstance(want[n], bool)
            else want[n]
            for n in names
        )
        assert row == expected


def test_escaping_keeps_every_special_character() -> None:
    text = "a\\b\tc\nd\re\x00f\\N"
    fields = read_load_data((escape(text) + "\t" * (len(COLUMNS) - 1) + "\n").encode("latin-1"))
    assert fields[0]["message_id"] == text.encode()
    assert escape_bytes(text.encode("latin-1")) == escape(text).encode("latin-1")


def test_a_batch_of_payloads_with_special_bytes_here_and_there_reads_back() -> None:
    plain = orjson.dumps(doc())
    values = [plain, b"a\\b", plain, b"\t\n\r\x00" * 3, plain, plain + b"\\", b"", plain]
    messages = [as_message(v, i) for i, v in enumerate(values)]
    data = LoadDataFile().encode(messages, BatchKeys().columns(messages), LIMIT)
    assert [row["payload"] for row in read_load_data(data)] == values
