"""Readings in the usual shape take msgspec's typed path (``store.typed_readings``); anything
the strict JSON rules might refuse, or another shape, is left to the orjson path, and either
way a batch's key columns are each message's own (``key_columns``)."""

from __future__ import annotations

import orjson
import pytest

from driftline.store.typed_readings import typed_fields
from tests.unit.test_raw_batch import as_message, batch_keys, doc, expected_keys

PLAIN = orjson.dumps(doc())


def with_seq(text: bytes) -> bytes:
    """The plain reading with ``text`` written in place of its ``"seq":7``."""
    return PLAIN.replace(b'"seq":7', text)


# Each is outside what the typed path may read as it is: a repeated key (at the top, in the
# values, spelled with an escape), an escape, an integer beyond 64 bits, a value of another
# type, another field, a label or seq out of range.
LEFT_TO_ORJSON = [
    with_seq(b'"seq":7,"seq":8'),
    with_seq(b'"seq":7,"label":1,"label":0'),
    PLAIN.replace(b'"Current":', b'"Current":1,"Current":'),
    PLAIN.replace(b'"Current":', b'"Curr\\u0065nt":1,"Current":'),
    PLAIN.replace(b'"pump-001"', b'"pump\\u003a001"'),
    PLAIN.replace(b'"pump-001"', b'"pump\\u002d001"'),
    PLAIN.replace(b'"Current":2.4', b'"Current":123456789012345678901234'),
    PLAIN.replace(b'"Current":2.4', b'"Current":9223372036854775808'),
    PLAIN.replace(b'"Current":2.4', b'"Current":1e300'),
    PLAIN.replace(b'"Current":2.4', b'"Current":"n/a"'),
    PLAIN.replace(b'"Current":2.4', b'"Current":null'),
    PLAIN.replace(b'"Current":2.4', b'"Current":true'),
    PLAIN.replace(b'"Current":2.4', b'"Current":NaN'),
    *map(
        with_seq,
        [
            b'"seq":7,"extra":1',
            b'"seq":-1',
            b'"seq":9223372036854775808',
            b'"seq":true',
            b'"seq":7.0',
            b'"seq":7,"label":"yes"',
            b'"seq":7,"label":99999999999999999999',
        ],
    ),
    orjson.dumps(doc(sensor_id=7)),
    orjson.dumps(doc(ts=1_700_000_000)),
    orjson.dumps(doc(values=[1.0])),
    PLAIN.replace(b"pump-001", b"pump-\xff"),
    PLAIN + b"\x00",
    b"\xef\xbb\xbf" + PLAIN,
    None,
    b"",
    b"[1, 2]",
]

# Each is the usual shape, so read on the typed path, however odd its content.
TYPED = [
    PLAIN,
    PLAIN.replace(b'"seq":7,', b""),
    *map(
        with_seq,
        [
            b'"seq":null',
            b'"seq":7,"label":1',
            b'"seq":7,"label":null',
            b'"seq":-0',
            b'"seq":9223372036854775807',
        ],
    ),
    PLAIN.replace(b'"Current":', b'"Cur:rent":'),
    PLAIN.replace(b'"Current":2.4', b'"Current":7'),
    PLAIN.replace(b'"Current":2.4', b'"Current":-1E+5'),
    PLAIN.replace(b'"Current":2.4', b'"Current":1234567890123456789'),
    orjson.dumps(doc(values={})),
    orjson.dumps(doc(sensor_id="pump-\U0001f600:é", ts="2026-05-01T10:00:00+02:00")),
    orjson.dumps(doc(sensor_id="pump\u202e")),
    orjson.dumps(doc(sensor_id="", ts="noon")),
    orjson.dumps(doc(ts="2026-02-30T10:00:00.123456Z")),
    b" \n" + PLAIN.replace(b",", b", ") + b"\n",
]


def test_what_the_typed_path_reads_and_what_it_leaves() -> None:
    values = TYPED + LEFT_TO_ORJSON
    assert typed_fields(values).rest == list(range(len(TYPED), len(values)))


@pytest.mark.parametrize("chunked", [False, True], ids=["alone", "among-plain-readings"])
def test_key_columns_are_each_messages_own_on_both_paths(chunked: bool) -> None:
    values: list[bytes | None] = []
    for value in TYPED + LEFT_TO_ORJSON:
        values += [value] + ([PLAIN] * 20 if chunked else [])
    messages = [as_message(v, i) for i, v in enumerate(values)]
    assert batch_keys(messages) == [expected_keys(m) for m in messages]


def test_a_repeated_key_is_found_whatever_else_the_batch_holds() -> None:
    # The batch's colons add up (one repeated key, one escape hiding a colon): each is
    # still found on its own.
    repeated = with_seq(b'"seq":7,"seq":8')
    hidden = PLAIN.replace(b'"pump-001"', b'"pump\\u003a001"')
    values = [PLAIN, repeated, hidden, PLAIN]
    assert typed_fields(values).rest == [1, 2]
    messages = [as_message(v, i) for i, v in enumerate(values)]
    assert batch_keys(messages) == [expected_keys(m) for m in messages]
