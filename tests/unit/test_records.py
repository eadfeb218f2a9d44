"""Records: JSON round trips, UTC timestamps, reading identity; the raw store's key columns."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from driftline.core.records import (
    DeadLetter,
    DriftEvent,
    FailedCheck,
    FeatureDrift,
    MessageSource,
    ModelPromoted,
    Reading,
    Record,
    RetrainRequest,
    ValidReading,
    reading_id,
)
from driftline.store.raw_store import key_columns, message_id
from driftline.streaming.messages import Message
from driftline.validation.batch import ReadingValidator
from tests.unit.factories import NORMAL_VALUES, NOW, message, reading_doc, valid_reading

CEST = timezone(timedelta(hours=2))


def records() -> list[Record]:
    ts = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    return [
        Reading(sensor_id="pump-001", ts=ts, seq=4, values=NORMAL_VALUES, label=0),
        valid_reading(ts=ts, seq=None),
        DeadLetter(
            stage="validator",
            reasons=[FailedCheck(check="in_range", column="Current", detail="-1 outside")],
            source=MessageSource(topic="raw", partition=2, offset=99),
            key="pump-001",
            payload="{}",
            sensor_id="pump-001",
            failed_at=ts,
        ),
        DriftEvent(
            sensor_id="pump-001",
            window_start=ts,
            window_end=ts + timedelta(minutes=5),
            window_size=300,
            reference_id="ref-1",
            features=[
                FeatureDrift(
                    feature="Current",
                    stattest="wasserstein",
                    statistic=2.5,
                    threshold=2.0,
                    drifted=True,
                )
            ],
            drift_share=1.0,
            flatlined=["Voltage"],
            drifted=True,
            closed_by="time",
        ),
        RetrainRequest(
            reason="drift",
            sensors=["pump-001"],
            drift_event_ids=["a", "b"],
            data_start=ts,
            data_end=ts + timedelta(hours=1),
        ),
        ModelPromoted(model_name="pump", model_version="3", reference_uri="/tmp/ref.parquet"),
    ]


@pytest.mark.parametrize("record", records(), ids=lambda r: type(r).__name__)
def test_records_round_trip_through_json_bytes(record: Record) -> None:
    raw = record.to_bytes()
    assert isinstance(raw, bytes)
    again = type(record).model_validate_json(raw)
    assert again == record
    assert again.to_bytes() == raw


@pytest.mark.parametrize("record", records(), ids=lambda r: type(r).__name__)
def test_timestamps_are_serialised_as_utc_with_z(record: Record) -> None:
    doc = orjson.loads(record.to_bytes())
    stamps = [v for v in doc.values() if isinstance(v, str) and v[:4].isdigit() and "T" in v]
    assert stamps, "every record here has a timestamp"
    for stamp in stamps:
        assert stamp.endswith("Z") and "+" not in stamp
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() == timedelta(0)


def test_an_offset_timestamp_is_written_as_the_same_instant_in_utc() -> None:
    r = valid_reading(ts=datetime(2024, 5, 1, 14, 30, 0, 5, tzinfo=CEST))
    doc = orjson.loads(r.to_bytes())
    assert doc["ts"] == "2024-05-01T12:30:00.000005Z"
    assert ValidReading.model_validate_json(r.to_bytes()).ts == r.ts


def test_records_carry_their_schema_version() -> None:
    for record in records():
        if "v" in type(record).model_fields:
            assert orjson.loads(record.to_bytes())["v"] == 1
    with pytest.raises(ValidationError):
        Reading.model_validate({"v": 2, "sensor_id": "s", "ts": NOW.isoformat(), "values": {}})


def test_records_reject_unknown_fields_and_are_frozen() -> None:
    doc = orjson.loads(valid_reading().to_bytes()) | {"colour": "red"}
    with pytest.raises(ValidationError):
        ValidReading.model_validate(doc)
    with pytest.raises(ValidationError):
        valid_reading().sensor_id = "other"  # type: ignore[misc]


def test_generated_ids_differ() -> None:
    a, b = records()[4], records()[4]
    assert isinstance(a, RetrainRequest) and isinstance(b, RetrainRequest)
    assert a.request_id != b.request_id
    assert len(a.request_id) == 32


def test_reading_id_is_stable_for_the_same_sensor_ts_and_seq() -> None:
    first = reading_id("pump-001", NOW, 3)
    assert first == reading_id("pump-001", NOW, 3)
    assert first == reading_id("pump-001", NOW.astimezone(CEST), 3)  # same instant
    assert len(first) == 32 and int(first, 16) >= 0


@pytest.mark.parametrize(
    ("sensor", "ts", "seq"),
    [
        ("pump-002", NOW, 3),
        ("pump-001", NOW + timedelta(microseconds=1), 3),
        ("pump-001", NOW, 4),
        ("pump-001", NOW, None),
        ("pump-001", NOW, 0),
    ],
)
def test_reading_id_differs_otherwise(sensor: str, ts: datetime, seq: int | None) -> None:
    assert reading_id(sensor, ts, seq) != reading_id("pump-001", NOW, 3)


def test_reading_id_is_not_fooled_by_separators() -> None:
    assert reading_id("a|b", NOW, 1) != reading_id("a", NOW, 1)


# --- raw store key columns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        reading_doc(seq=12),
        reading_doc(seq=None),
        reading_doc(seq=0, ts="2024-05-01T13:59:00+02:00"),
        reading_doc(seq=5, ts="2024-05-01T11:59:00"),
        reading_doc(seq=2**63 - 1),
    ],
    ids=["seq", "no-seq", "offset-ts", "naive-ts", "largest-seq"],
)
def test_key_columns_give_the_validators_reading_id(
    validator: ReadingValidator, doc: dict[str, object]
) -> None:
    msg = message(doc)
    ((_, valid),) = validator.validate([msg]).valid
    keys = key_columns(msg)
    assert keys.reading_id == valid.reading_id
    assert keys.sensor_id == valid.sensor_id
    assert keys.event_ts == valid.ts
    assert keys.seq == valid.seq


@pytest.mark.parametrize(
    "value",
    [
        b"garbage",
        b"[1, 2]",
        None,
        orjson.dumps({"ts": "2024-05-01T00:00:00Z"}),
        orjson.dumps({"sensor_id": "pump-001", "ts": "noon"}),
        orjson.dumps(reading_doc(seq=-5)),
        orjson.dumps(reading_doc(seq="7")),
    ],
    ids=["not-json", "not-object", "tombstone", "no-sensor", "bad-ts", "neg-seq", "str-seq"],
)
def test_a_message_that_is_not_a_reading_has_only_its_own_identity(value: bytes | None) -> None:
    a = Message("raw", 1, 500, None, value)
    assert key_columns(a).reading_id is None
    assert key_columns(a).message_id == message_id(None, value)
    # Its identity is its key and bytes, wherever it was read: a redelivery is the same row,
    # another message another row.
    assert key_columns(Message("raw2", 2, 9, None, value)).message_id == key_columns(a).message_id
    for other in (Message("raw", 1, 500, b"k", value), Message("raw", 1, 500, None, b"x")):
        assert key_columns(other).message_id != key_columns(a).message_id


def test_message_identity_tells_missing_from_empty() -> None:
    ids = {
        message_id(None, None),
        message_id(b"", None),
        message_id(None, b""),
        message_id(b"", b""),
    }
    assert len(ids) == 4
    assert message_id(b"ab", b"c") != message_id(b"a", b"bc")


def test_key_columns_keep_what_can_be_read() -> None:
    msg = Message("raw", 0, 1, None, orjson.dumps({"sensor_id": "pump-9", "seq": -4}))
    keys = key_columns(msg)
    assert keys.sensor_id == "pump-9"
    assert keys.event_ts is None and keys.seq is None


@pytest.mark.parametrize("seq", [2**63, 2**64, -(2**63) - 1])
def test_a_seq_beyond_bigint_is_not_decoded(validator: ReadingValidator, seq: int) -> None:
    msg = message(json.dumps(reading_doc(seq=seq)).encode())
    ((_, letter),) = validator.validate([msg]).invalid
    assert [(r.check, r.column) for r in letter.reasons] == [("number_too_large", None)]
    keys = key_columns(msg)
    assert keys.seq is None and keys.sensor_id is None


def test_an_overlong_sensor_id_is_rejected_and_stored_without_a_reading_id(
    validator: ReadingValidator,
) -> None:
    msg = message(reading_doc(sensor_id="pump-" + "x" * 200))
    ((_, letter),) = validator.validate([msg]).invalid
    assert ("wrong_type", "sensor_id") in [(r.check, r.column) for r in letter.reasons]
    keys = key_columns(msg)
    assert keys.sensor_id is None and keys.reading_id is None
