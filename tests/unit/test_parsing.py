"""parse_reading: structural problems of a message, before the schema sees it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from driftline.core.records import reading_id
from driftline.validation.parsing import parse_reading, parse_timestamp
from tests.unit.factories import NORMAL_VALUES, reading_doc

FEATURES = list(NORMAL_VALUES)
LIMIT = 64 * 1024


def parse(payload: object, max_bytes: int = LIMIT):  # type: ignore[no-untyped-def]
    raw = payload if isinstance(payload, bytes) or payload is None else orjson.dumps(payload)
    return parse_reading(raw, FEATURES, max_bytes)


def checks(parsed) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return [(p.check, p.column) for p in parsed.problems]


def test_a_well_formed_reading_parses_without_problems() -> None:
    doc = reading_doc(ts="2024-05-01T11:59:00.250000Z", seq=7, label=1)
    parsed = parse(doc)
    assert parsed.problems == []
    assert not parsed.fatal
    assert parsed.sensor_id == "pump-001"
    assert parsed.ts == datetime(2024, 5, 1, 11, 59, 0, 250000, tzinfo=UTC)
    assert parsed.seq == 7
    assert parsed.label == 1
    assert parsed.values == NORMAL_VALUES
    assert parsed.reading_id == reading_id("pump-001", parsed.ts, 7)


def test_integer_measurements_become_floats() -> None:
    parsed = parse(reading_doc(values={"Current": 3}))
    assert parsed.problems == []
    assert parsed.values["Current"] == 3.0
    assert isinstance(parsed.values["Current"], float)


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'{"sensor_id": "pump-001", "values": {', b""],
    ids=["text", "truncated", "empty"],
)
def test_bytes_that_are_not_json_are_fatal(raw: bytes) -> None:
    parsed = parse(raw)
    assert checks(parsed) == [("not_json", None)]
    assert parsed.fatal
    assert parsed.reading_id is None


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xfe\x00", b"\x80{}", '{"a": 1}'.encode("utf-16"), b"\xef\xbb\xbf{}"],
    ids=["binary", "continuation byte", "utf-16", "utf-8 bom"],
)
def test_bytes_that_are_not_bom_free_utf8_are_bad_encoding(raw: bytes) -> None:
    parsed = parse(raw)
    assert checks(parsed) == [("bad_encoding", None)]
    assert parsed.fatal


def test_a_tombstone_is_not_json() -> None:
    parsed = parse_reading(None, FEATURES, LIMIT)
    assert checks(parsed) == [("not_json", None)]
    assert parsed.fatal


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[1, 2]", "list"), (b'"pump-001"', "str"), (b"42", "int"), (b"null", "NoneType")],
)
def test_json_that_is_not_an_object_is_fatal(raw: bytes, kind: str) -> None:
    parsed = parse(raw)
    assert checks(parsed) == [("not_object", None)]
    assert parsed.fatal
    assert kind in parsed.problems[0].detail


def test_a_payload_over_the_limit_is_fatal_and_not_parsed() -> None:
    raw = orjson.dumps(reading_doc())
    assert parse(raw, max_bytes=len(raw)).problems == []
    parsed = parse(raw, max_bytes=len(raw) - 1)
    assert checks(parsed) == [("too_large", None)]
    assert parsed.fatal
    assert parsed.sensor_id is None  # not even looked at
    assert str(len(raw)) in parsed.problems[0].detail


@pytest.mark.parametrize("missing", ["sensor_id", "ts", "values"])
def test_each_required_field_is_reported_missing(missing: str) -> None:
    doc = reading_doc()
    del doc[missing]
    parsed = parse(doc)
    assert ("missing_field", missing) in checks(parsed)
    assert parsed.fatal


def test_every_missing_field_is_reported_at_once() -> None:
    parsed = parse({"seq": 1})
    assert sorted(checks(parsed)) == [
        ("missing_field", "sensor_id"),
        ("missing_field", "ts"),
        ("missing_field", "values"),
    ]


def test_optional_fields_may_be_absent_or_null() -> None:
    doc = reading_doc(seq=None)
    assert parse(doc).problems == []
    parsed = parse(reading_doc(seq=None, label=None, v=1) | {"seq": None})
    assert parsed.problems == []
    assert parsed.seq is None and parsed.label is None


def test_an_unexpected_field_is_reported_but_not_fatal() -> None:
    parsed = parse(reading_doc(colour="red"))
    assert checks(parsed) == [("unexpected_field", "colour")]
    assert not parsed.fatal
    assert parsed.values == NORMAL_VALUES


@pytest.mark.parametrize("sensor_id", ["", "   ", 17, None, ["pump-001"]])
def test_sensor_id_must_be_a_non_empty_string(sensor_id: object) -> None:
    parsed = parse(reading_doc(sensor_id=sensor_id))  # type: ignore[arg-type]
    assert checks(parsed) == [("wrong_type", "sensor_id")]
    assert parsed.fatal
    assert parsed.sensor_id is None


@pytest.mark.parametrize(
    "ts", ["yesterday", "2024-13-01T00:00:00Z", 1714564800, None, ""], ids=repr
)
def test_ts_must_be_an_iso_timestamp_string(ts: object) -> None:
    doc = reading_doc()
    doc["ts"] = ts
    parsed = parse(doc)
    assert checks(parsed) == [("wrong_type", "ts")]
    assert parsed.fatal


def test_a_naive_timestamp_is_taken_as_utc() -> None:
    parsed = parse(reading_doc(ts="2024-05-01T11:59:00"))
    assert parsed.problems == []
    assert parsed.ts == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert parsed.ts.utcoffset() == timedelta(0)


def test_an_offset_timestamp_is_converted_to_utc() -> None:
    parsed = parse(reading_doc(ts="2024-05-01T13:59:00+02:00"))
    assert parsed.ts == datetime(2024, 5, 1, 11, 59, tzinfo=UTC)
    assert parsed.ts.tzinfo == UTC
    # The same instant written two ways is the same reading.
    other = parse(reading_doc(ts="2024-05-01T11:59:00Z"))
    assert parsed.reading_id == other.reading_id


@pytest.mark.parametrize(
    ("ts", "check"),
    [
        ("1969-12-31T23:59:59Z", "not_too_old"),
        ("0001-01-01T00:00:00Z", "not_too_old"),
        ("2200-01-01T00:00:01Z", "not_in_future"),
        ("9999-12-31T23:59:59Z", "not_in_future"),
    ],
)
def test_implausible_timestamps_are_fatal(ts: str, check: str) -> None:
    parsed = parse(reading_doc(ts=ts))
    assert checks(parsed) == [(check, "ts")]
    assert parsed.fatal
    assert ts in parsed.problems[0].detail


@pytest.mark.parametrize("ts", ["1970-01-01T00:00:00Z", "2200-01-01T00:00:00Z"])
def test_the_plausible_window_includes_its_bounds(ts: str) -> None:
    assert parse(reading_doc(ts=ts)).problems == []


@pytest.mark.parametrize("seq", [-1, 1.5, "3", True], ids=repr)
def test_seq_must_be_a_non_negative_integer(seq: object) -> None:
    parsed = parse(reading_doc(seq=seq))  # type: ignore[arg-type]
    assert checks(parsed) == [("wrong_type", "seq")]
    assert not parsed.fatal
    assert parsed.seq is None


def test_seq_zero_is_valid() -> None:
    assert parse(reading_doc(seq=0)).seq == 0


@pytest.mark.parametrize("label", [2, -1, 0.5, "1", True], ids=repr)
def test_label_must_be_zero_or_one(label: object) -> None:
    parsed = parse(reading_doc(label=label))
    assert checks(parsed) == [("wrong_type", "label")]
    assert parsed.label is None


@pytest.mark.parametrize("label", [0, 1, 1.0])
def test_label_zero_or_one_is_kept_as_int(label: float) -> None:
    parsed = parse(reading_doc(label=label))
    assert parsed.problems == []
    assert parsed.label == int(label)
    assert isinstance(parsed.label, int)


@pytest.mark.parametrize("v", [2, 0, "1", True, 1.0], ids=repr)
def test_other_record_versions_are_unsupported(v: object) -> None:
    parsed = parse(reading_doc(v=v))
    assert checks(parsed) == [("unsupported_version", "v")]


def test_values_must_be_an_object() -> None:
    parsed = parse(reading_doc() | {"values": [1.0, 2.0]})
    assert checks(parsed) == [("wrong_type", "values")]
    assert parsed.fatal


@pytest.mark.parametrize("value", ["n/a", True, [1.0], {"x": 1}], ids=repr)
def test_a_non_numeric_measurement_is_wrong_type(value: object) -> None:
    parsed = parse(reading_doc(values={"Current": value}))
    assert checks(parsed) == [("wrong_type", "Current")]
    assert not parsed.fatal
    assert "Current" not in parsed.values


def test_a_null_measurement_becomes_nan_for_the_schema() -> None:
    parsed = parse(reading_doc(values={"Current": None}))
    assert parsed.problems == []
    assert parsed.values["Current"] != parsed.values["Current"]  # NaN


def test_an_unknown_measurement_is_reported() -> None:
    parsed = parse(reading_doc(values={"Humidity": 40.0}))
    assert checks(parsed) == [("unknown_measurement", "Humidity")]
    assert not parsed.fatal
    assert "Humidity" not in parsed.values


def test_an_absent_measurement_is_reported() -> None:
    doc = reading_doc()
    del doc["values"]["Voltage"]
    parsed = parse(doc)
    assert checks(parsed) == [("missing_measurement", "Voltage")]
    assert not parsed.fatal


def test_nan_and_infinity_tokens_parse_as_values() -> None:
    # orjson rejects these tokens; the fallback parser keeps them so the schema can say why.
    raw = orjson.dumps(reading_doc()).replace(b'"Current":2.4', b'"Current":NaN')
    raw = raw.replace(b'"Voltage":228.6', b'"Voltage":Infinity')
    raw = raw.replace(b'"Pressure":0.11', b'"Pressure":-Infinity')
    assert raw.count(b"Infinity") == 2 and b"NaN" in raw
    parsed = parse(raw)
    assert parsed.problems == []
    assert parsed.values["Current"] != parsed.values["Current"]
    assert parsed.values["Voltage"] == float("inf")
    assert parsed.values["Pressure"] == float("-inf")


def test_every_problem_of_a_message_is_reported_together() -> None:
    doc = reading_doc(seq=-3, label=7, extra=True, values={"Current": "x", "Humidity": 1.0})
    del doc["values"]["Voltage"]
    assert sorted(checks(parse(doc))) == [
        ("missing_measurement", "Voltage"),
        ("unexpected_field", "extra"),
        ("unknown_measurement", "Humidity"),
        ("wrong_type", "Current"),
        ("wrong_type", "label"),
        ("wrong_type", "seq"),
    ]


def test_long_names_are_truncated_in_problems() -> None:
    name = "x" * 1000
    parsed = parse(reading_doc(**{name: 1}))
    (problem,) = parsed.problems
    assert problem.check == "unexpected_field"
    assert problem.column == name[:100]
    assert len(problem.detail) <= 200


@pytest.mark.parametrize("digits", [20, 400, 5000])
def test_a_huge_integer_measurement_is_a_problem_not_a_crash(digits: int) -> None:
    literal = b"1" + b"0" * (digits - 1)
    raw = orjson.dumps(reading_doc()).replace(b'"Current":2.4', b'"Current":' + literal)
    parsed = parse(raw)
    assert checks(parsed) == [("number_too_large", None)]
    assert parsed.fatal


@pytest.mark.parametrize(
    ("raw", "check"),
    [
        (b'{"sensor_id":"pump-1","sensor_id":"pump-2"}', "duplicate_key"),
        (b'{"values":{"\\udc00":1.0}}', "lone_surrogate"),
        (b'{"sensor_id":"\\ud800"}', "lone_surrogate"),
        (b"[" * 10_000 + b"]" * 10_000, "too_deep"),
    ],
    ids=["duplicate key", "surrogate key", "surrogate value", "deep"],
)
def test_hostile_json_is_a_fatal_decode_problem(raw: bytes, check: str) -> None:
    parsed = parse(raw)
    assert checks(parsed) == [(check, None)]
    assert parsed.fatal


@pytest.mark.parametrize("sensor_id", ["pump-\x00", "pump-\u202e1", "pump\n1"], ids=repr)
def test_sensor_id_must_be_printable(sensor_id: str) -> None:
    parsed = parse(reading_doc(sensor_id=sensor_id))
    assert checks(parsed) == [("wrong_type", "sensor_id")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T07:00:00-05:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_returns_aware_utc(text: str, expected: datetime) -> None:
    ts = parse_timestamp(text)
    assert ts == expected
    assert ts is not None and ts.tzinfo is UTC


@pytest.mark.parametrize("value", [None, 0, 1.5, "noon", b"2024-05-01"], ids=repr)
def test_parse_timestamp_rejects_non_timestamps(value: object) -> None:
    assert parse_timestamp(value) is None


def test_parse_timestamp_keeps_the_instant() -> None:
    local = datetime(2024, 5, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    assert parse_timestamp(local.isoformat()) == local
