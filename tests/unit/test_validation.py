"""ReadingValidator: every kind of invalid reading is dead-lettered with the right checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from driftline.core.records import reading_id
from driftline.streaming.messages import Message
from driftline.validation.batch import BatchVerdict, ReadingValidator, RecentIds
from tests.unit.factories import NORMAL_VALUES, NOW, message, reading_doc

MakeValidator = Callable[..., ReadingValidator]


def failed(verdict: BatchVerdict) -> list[list[tuple[str, str | None]]]:
    """Per invalid message, in order: its (check, column) pairs."""
    return [[(r.check, r.column) for r in dl.reasons] for _, dl in verdict.invalid]


def only_failure(validator: ReadingValidator, doc: dict[str, Any] | bytes) -> list[tuple]:
    verdict = validator.validate([message(doc)])
    assert verdict.valid == []
    assert len(verdict.invalid) == 1
    return failed(verdict)[0]


def test_valid_readings_pass_with_their_fields(validator: ReadingValidator) -> None:
    docs = [reading_doc(seq=i, ts=NOW - timedelta(seconds=10 * i)) for i in range(5)]
    docs[0]["label"] = 1
    messages = [message(d) for d in docs]
    verdict = validator.validate(messages)
    assert verdict.invalid == []
    assert [m for m, _ in verdict.valid] == messages
    first = verdict.valid[0][1]
    assert first.sensor_id == "pump-001"
    assert first.ts == NOW
    assert first.seq == 0
    assert first.label == 1
    assert first.values == NORMAL_VALUES
    assert first.reading_id == reading_id("pump-001", NOW, 0)
    assert len({r.reading_id for _, r in verdict.valid}) == 5


def test_an_empty_batch_gives_an_empty_verdict(validator: ReadingValidator) -> None:
    verdict = validator.validate([])
    assert verdict.valid == [] and verdict.invalid == []


def test_values_on_the_range_bounds_are_valid(validator: ReadingValidator) -> None:
    doc = reading_doc(values={"Pressure": -5.0, "Voltage": 500.0, "Current": 0})
    verdict = validator.validate([message(doc)])
    assert verdict.invalid == []


@pytest.mark.parametrize("sensor_id", ["pump-042", "skab-valve1", "pump-"])
def test_sensor_ids_matching_a_profile_pattern_are_known(
    validator: ReadingValidator, sensor_id: str
) -> None:
    assert validator.validate([message(reading_doc(sensor_id=sensor_id))]).invalid == []


@pytest.mark.parametrize("sensor_id", ["ghost-001", "pump", "xpump-1", "PUMP-001"])
def test_an_unknown_sensor_fails_known_sensor(validator: ReadingValidator, sensor_id: str) -> None:
    assert only_failure(validator, reading_doc(sensor_id=sensor_id)) == [
        ("known_sensor", "sensor_id")
    ]


@pytest.mark.parametrize(
    ("feature", "value"),
    [("Current", -0.01), ("Current", 50.01), ("Pressure", -1e9), ("Temperature", 1e6)],
)
def test_a_value_out_of_range_fails_in_range(
    validator: ReadingValidator, feature: str, value: float
) -> None:
    verdict = validator.validate([message(reading_doc(values={feature: value}))])
    ((_, letter),) = verdict.invalid
    ((check, column),) = [(r.check, r.column) for r in letter.reasons]
    assert (check, column) == ("in_range", feature)
    assert str(value) in letter.reasons[0].detail


def test_infinity_fails_finite_only(validator: ReadingValidator) -> None:
    raw = orjson.dumps(reading_doc()).replace(b'"Voltage":228.6', b'"Voltage":Infinity')
    raw = raw.replace(b'"Current":2.4', b'"Current":-Infinity')
    assert sorted(only_failure(validator, raw)) == [("finite", "Current"), ("finite", "Voltage")]


def test_nan_and_null_fail_not_nullable(validator: ReadingValidator) -> None:
    raw = orjson.dumps(reading_doc(values={"Current": None}))
    raw = raw.replace(b'"Voltage":228.6', b'"Voltage":NaN')
    assert sorted(only_failure(validator, raw)) == [
        ("not_nullable", "Current"),
        ("not_nullable", "Voltage"),
    ]


def test_a_non_numeric_value_is_reported_once_as_wrong_type(validator: ReadingValidator) -> None:
    # It is NaN in the schema's frame; its not-null failure would say nothing new.
    assert only_failure(validator, reading_doc(values={"Current": "n/a"})) == [
        ("wrong_type", "Current")
    ]


def test_an_absent_measurement_is_reported_once(validator: ReadingValidator) -> None:
    doc = reading_doc()
    del doc["values"]["Current"]
    assert only_failure(validator, doc) == [("missing_measurement", "Current")]


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (timedelta(seconds=300), True),
        (timedelta(seconds=301), False),
        (timedelta(days=365), False),
    ],
)
def test_timestamps_too_far_in_the_future_fail_not_in_future(
    validator: ReadingValidator, offset: timedelta, ok: bool
) -> None:
    verdict = validator.validate([message(reading_doc(ts=NOW + offset))])
    if ok:
        assert verdict.invalid == []
    else:
        assert failed(verdict) == [[("not_in_future", "ts")]]


@pytest.mark.parametrize(
    ("age", "ok"),
    [
        (timedelta(days=7), True),
        (timedelta(days=7, seconds=1), False),
        (timedelta(days=400), False),
    ],
)
def test_timestamps_too_old_fail_not_too_old(
    validator: ReadingValidator, age: timedelta, ok: bool
) -> None:
    verdict = validator.validate([message(reading_doc(ts=NOW - age))])
    if ok:
        assert verdict.invalid == []
    else:
        assert failed(verdict) == [[("not_too_old", "ts")]]


def test_the_timestamp_window_follows_the_clock(make_validator: MakeValidator) -> None:
    doc = reading_doc(ts=NOW)
    assert make_validator(now=NOW).validate([message(doc)]).invalid == []
    later = make_validator(now=NOW + timedelta(days=8))
    assert failed(later.validate([message(doc)])) == [[("not_too_old", "ts")]]
    earlier = make_validator(now=NOW - timedelta(hours=1))
    assert failed(earlier.validate([message(doc)])) == [[("not_in_future", "ts")]]


def test_the_clock_is_read_for_every_batch(profile) -> None:  # type: ignore[no-untyped-def]
    times = iter([NOW, NOW + timedelta(days=30)])
    validator = ReadingValidator(profile, clock=lambda: next(times))
    doc = reading_doc(ts=NOW)
    assert validator.validate([message(doc)]).invalid == []
    assert failed(validator.validate([message(doc)])) == [[("not_too_old", "ts")]]


def test_a_naive_timestamp_is_validated_as_utc(validator: ReadingValidator) -> None:
    naive = (NOW - timedelta(minutes=1)).replace(tzinfo=None).isoformat()
    verdict = validator.validate([message(reading_doc(ts=naive))])
    assert verdict.invalid == []
    assert verdict.valid[0][1].ts == NOW - timedelta(minutes=1)


@pytest.mark.parametrize(
    ("payload", "check"),
    [
        (b"{nope", "not_json"),
        (None, "not_json"),
        (b"[1, 2, 3]", "not_object"),
    ],
)
def test_non_readings_fail_structurally(
    validator: ReadingValidator, payload: bytes | None, check: str
) -> None:
    assert only_failure(validator, payload) == [(check, None)]  # type: ignore[arg-type]


def test_a_message_over_the_size_limit_is_too_large(make_validator: MakeValidator) -> None:
    validator = make_validator(max_message_bytes=256)
    doc = reading_doc(sensor_id="pump-" + "x" * 300)
    assert only_failure(validator, doc) == [("too_large", None)]


def test_wrong_types_of_optional_fields_are_wrong_type(validator: ReadingValidator) -> None:
    verdict = validator.validate(
        [
            message(reading_doc(seq=-1)),
            message(reading_doc(seq=2, label="yes")),
            message(reading_doc(seq=3, v=2)),
            message(reading_doc(seq=4, colour="red")),
        ]
    )
    assert verdict.valid == []
    assert failed(verdict) == [
        [("wrong_type", "seq")],
        [("wrong_type", "label")],
        [("unsupported_version", "v")],
        [("unexpected_field", "colour")],
    ]


def test_a_reading_failing_several_checks_lists_them_all(validator: ReadingValidator) -> None:
    doc = reading_doc(sensor_id="ghost-1", ts=NOW + timedelta(hours=1), values={"Current": -5.0})
    assert sorted(only_failure(validator, doc)) == [
        ("in_range", "Current"),
        ("known_sensor", "sensor_id"),
        ("not_in_future", "ts"),
    ]


def test_bad_readings_do_not_spoil_good_ones_in_the_same_batch(
    validator: ReadingValidator,
) -> None:
    messages = [
        message(reading_doc(seq=0)),
        message(b"garbage"),
        message(reading_doc(seq=1, values={"Current": 99.0})),
        message(reading_doc(seq=2, sensor_id="ghost")),
        message(reading_doc(seq=3)),
    ]
    verdict = validator.validate(messages)
    assert [m.offset for m, _ in verdict.valid] == [messages[0].offset, messages[4].offset]
    assert [m.offset for m, _ in verdict.invalid] == [m.offset for m in messages[1:4]]
    assert failed(verdict) == [
        [("not_json", None)],
        [("in_range", "Current")],
        [("known_sensor", "sensor_id")],
    ]


def test_a_dead_letter_keeps_the_message_and_its_origin(validator: ReadingValidator) -> None:
    msg = Message("raw-topic", 3, 1234, b"pump-009", orjson.dumps(reading_doc("ghost-9")))
    ((original, letter),) = validator.validate([msg]).invalid
    assert original is msg
    assert letter.stage == "validator"
    assert letter.sensor_id == "ghost-9"
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (
        "raw-topic",
        3,
        1234,
    )
    assert letter.key == "pump-009"
    assert orjson.loads(letter.payload) == orjson.loads(msg.value or b"")
    assert letter.payload_encoding == "utf-8"


def test_a_binary_payload_is_kept_as_base64(validator: ReadingValidator) -> None:
    ((_, letter),) = validator.validate([message(b"\xff\x00\xfe")]).invalid
    assert letter.payload_encoding == "base64"
    assert letter.payload == "/wD+"


# --- duplicates ------------------------------------------------------------------------------


def test_a_duplicate_inside_a_batch_is_flagged_after_the_first(
    validator: ReadingValidator,
) -> None:
    doc = reading_doc(seq=5)
    messages = [message(doc), message(reading_doc(seq=6)), message(doc)]
    verdict = validator.validate(messages)
    assert [m.offset for m, _ in verdict.valid] == [messages[0].offset, messages[1].offset]
    assert failed(verdict) == [[("not_duplicate", "reading_id")]]


def test_the_same_instant_written_differently_is_a_duplicate(validator: ReadingValidator) -> None:
    a = reading_doc(ts="2024-05-01T11:00:00Z", seq=1)
    b = reading_doc(ts="2024-05-01T13:00:00+02:00", seq=1)
    assert failed(validator.validate([message(a), message(b)])) == [
        [("not_duplicate", "reading_id")]
    ]


def test_readings_differing_in_sensor_ts_or_seq_are_not_duplicates(
    validator: ReadingValidator,
) -> None:
    base = reading_doc(seq=1)
    docs = [
        base,
        reading_doc(sensor_id="pump-002", seq=1),
        reading_doc(ts=NOW - timedelta(seconds=59, microseconds=999_999), seq=1),
        reading_doc(seq=2),
        reading_doc(seq=None),
    ]
    assert validator.validate([message(d) for d in docs]).invalid == []


def test_a_duplicate_across_batches_is_flagged_after_remember(
    validator: ReadingValidator,
) -> None:
    doc = reading_doc(seq=1)
    first = validator.validate([message(doc)])
    validator.remember(first)
    second = validator.validate([message(doc), message(reading_doc(seq=2))])
    assert failed(second) == [[("not_duplicate", "reading_id")]]
    assert len(second.valid) == 1


def test_a_retried_batch_is_not_a_duplicate_of_itself(validator: ReadingValidator) -> None:
    messages = [message(reading_doc(seq=i)) for i in range(3)]
    first = validator.validate(messages)
    retry = validator.validate(messages)  # publish failed: nothing remembered
    assert retry.invalid == []
    assert [r for _, r in retry.valid] == [r for _, r in first.valid]


def test_remember_records_only_valid_readings(validator: ReadingValidator) -> None:
    bad = reading_doc(seq=1, values={"Current": -1.0})
    verdict = validator.validate([message(bad), message(reading_doc(seq=2))])
    validator.remember(verdict)
    assert len(validator.recent) == 1
    fixed = reading_doc(seq=1)  # the corrected reading, resent in a later batch
    assert validator.validate([message(fixed)]).invalid == []


def test_a_rejected_reading_does_not_make_a_later_one_in_its_batch_a_duplicate(
    validator: ReadingValidator,
) -> None:
    bad = reading_doc(seq=1, values={"Current": -1.0})
    fixed = reading_doc(seq=1)
    verdict = validator.validate([message(bad), message(fixed)])
    assert failed(verdict) == [[("in_range", "Current")]]
    assert len(verdict.valid) == 1


def test_dedup_memory_is_bounded(make_validator: MakeValidator) -> None:
    validator = make_validator(dedup_capacity=2)
    for seq in range(3):
        validator.remember(validator.validate([message(reading_doc(seq=seq))]))
    assert len(validator.recent) == 2
    # seq 0 was forgotten (oldest first); seq 1 and 2 are still known.
    again = validator.validate([message(reading_doc(seq=s)) for s in range(3)])
    assert [r.seq for _, r in again.valid] == [0]
    assert failed(again) == [[("not_duplicate", "reading_id")]] * 2


def test_zero_dedup_capacity_remembers_nothing(make_validator: MakeValidator) -> None:
    validator = make_validator(dedup_capacity=0)
    verdict = validator.validate([message(reading_doc())])
    validator.remember(verdict)
    assert len(validator.recent) == 0
    assert validator.validate([message(reading_doc())]).invalid == []


def test_recent_ids_forgets_the_oldest_first() -> None:
    recent = RecentIds(3)
    for rid in "abcd":
        recent.add(rid)
    assert len(recent) == 3
    assert "a" not in recent
    assert all(rid in recent for rid in "bcd")
    recent.add("b")  # already known: nothing forgotten
    assert len(recent) == 3 and "c" in recent


# --- isolating errors ------------------------------------------------------------------------


def test_validate_isolating_errors_equals_validate_when_nothing_breaks(
    make_validator: MakeValidator,
) -> None:
    messages = [message(reading_doc(seq=1)), message(b"[]"), message(reading_doc(seq=1))]
    plain = make_validator().validate(messages)
    isolated = make_validator().validate_isolating_errors(messages)
    assert isolated.valid == plain.valid
    assert failed(isolated) == failed(plain)


def test_validate_isolating_errors_dead_letters_only_the_culprit(
    validator: ReadingValidator, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = message(reading_doc(seq=2))
    messages = [message(reading_doc(seq=1)), poison, message(reading_doc(seq=3))]
    real = validator.validate

    def validate(batch):  # type: ignore[no-untyped-def]
        if any(m is poison for m in batch):
            raise RuntimeError("boom")
        return real(batch)

    monkeypatch.setattr(validator, "validate", validate)
    verdict = validator.validate_isolating_errors(messages)
    assert [r.seq for _, r in verdict.valid] == [1, 3]
    ((message_, letter),) = verdict.invalid
    assert message_ is poison
    assert [(r.check, r.detail) for r in letter.reasons] == [
        ("internal_error", "RuntimeError: boom")
    ]
    assert letter.sensor_id is None


def test_a_huge_integer_is_dead_lettered_and_its_batch_goes_through(
    validator: ReadingValidator,
) -> None:
    raw = orjson.dumps(reading_doc(seq=2)).replace(b'"Current":2.4', b'"Current":1' + b"0" * 400)
    verdict = validator.validate_isolating_errors(
        [message(reading_doc(seq=1)), message(raw), message(reading_doc(seq=3))]
    )
    assert [r.seq for _, r in verdict.valid] == [1, 3]
    assert len(verdict.invalid) == 1
    assert [(r.check, r.column) for r in verdict.invalid[0][1].reasons] == [
        ("number_too_large", None)
    ]


def test_timestamps_are_compared_as_utc_instants(make_validator: MakeValidator) -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    validator = make_validator(now=now)
    # 14:04 at +02:00 is 12:04 UTC: within the 300 s of tolerated skew.
    ok = reading_doc(ts="2024-05-01T14:04:00+02:00")
    late = reading_doc(ts="2024-05-01T14:06:00+02:00", seq=2)
    assert failed(validator.validate([message(ok), message(late)])) == [[("not_in_future", "ts")]]


@pytest.mark.parametrize(
    "key", [b"pump-002", b"\xff\xfe", b"", b"PUMP-001", b"pump-001 "], ids=repr
)
def test_a_key_other_than_the_sensor_id_is_dead_lettered(
    validator: ReadingValidator, key: bytes
) -> None:
    msg = message(reading_doc())
    keyed = Message(msg.topic, msg.partition, msg.offset, key, msg.value)
    verdict = validator.validate([keyed])
    ((_, letter),) = verdict.invalid
    assert [(r.check, r.column) for r in letter.reasons] == [("key_mismatch", "key")]
    assert "pump-001" in letter.reasons[0].detail


def test_an_unkeyed_or_rightly_keyed_reading_is_valid(validator: ReadingValidator) -> None:
    msg = message(reading_doc(seq=41))
    unkeyed = Message(
        msg.topic, msg.partition, msg.offset + 1, None, message(reading_doc(seq=42)).value
    )
    assert len(validator.validate([msg, unkeyed]).valid) == 2
