"""decode_valid_reading (the drift service's decoding of the valid topic) reads what
ValidReading.model_validate_json reads, and refuses what it refuses."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from pydantic import ValidationError

from driftline.core.records import ValidReading
from driftline.core.valid_topic import WireValidReading, decode_valid_reading
from tests.unit.factories import NOW, message, reading_doc
from tests.unit.test_wire_verdict import validator

FIELDS = ("v", "reading_id", "sensor_id", "ts", "seq", "values", "label")


def same_fields(raw: bytes) -> None:
    got = decode_valid_reading(raw)
    want = ValidReading.model_validate_json(raw)
    assert {f: getattr(got, f) for f in FIELDS} == {f: getattr(want, f) for f in FIELDS}


def test_the_validators_output_reads_as_the_model_reads_it() -> None:
    docs = [reading_doc(f"pump-{i:03d}", NOW - timedelta(seconds=i), seq=i) for i in range(20)]
    docs += [reading_doc("pump-001", seq=None), reading_doc("pump-002", label=1)]
    docs += [reading_doc("pump-003", ts="2024-05-01T11:00:00+02:00")]  # the reference path
    verdict = validator().validate_wire([message(d) for d in docs])
    assert len(verdict.valid) == len(docs)
    for _, raw in verdict.valid:
        assert isinstance(decode_valid_reading(raw), WireValidReading)
        same_fields(raw)


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 1.0},  # msgspec refuses, the model takes it: the model decides
        {"values": {"Current": 2}},
        {"ts": "2024-05-01T11:00:00"},  # naive, on both
    ],
)
def test_what_only_the_model_accepts_is_still_accepted(change: dict) -> None:
    record = orjson.loads(
        ValidReading(
            reading_id="r1", sensor_id="pump-001", ts=NOW, values={"Current": 2.5}
        ).to_bytes()
    )
    record.update(change)
    same_fields(orjson.dumps(record))


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"not json",
        b"[]",
        b'{"v":2,"reading_id":"r","sensor_id":"s","ts":"2024-05-01T11:00:00Z","values":{}}',
        b'{"reading_id":"r","sensor_id":"s","ts":"2024-05-01T11:00:00Z","values":{},"x":1}',
        b'{"reading_id":"r","sensor_id":"s","ts":"yesterday","values":{}}',
        b'{"reading_id":"r","sensor_id":"s","ts":"2024-05-01T11:00:00Z","values":{"a":"b"}}',
        b'{"sensor_id":"s","ts":"2024-05-01T11:00:00Z","values":{}}',
    ],
)
def test_what_the_model_refuses_is_refused(raw: bytes | None) -> None:
    with pytest.raises(ValidationError):
        decode_valid_reading(raw)
