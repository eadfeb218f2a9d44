"""The columnar path (``ReadingValidator.validate_wire``: ``driftline.reading_columns`` and the
numpy reasons of ``Screen.reasons``) against the reference path (``validate``: per-message
``parse_reading`` and the pandera schema): the same messages accepted, the same ValidReading
read back from the published bytes, the same dead letters with the same reasons in the same
order, and reading ids equal to ``records.reading_id``."""

from __future__ import annotations

import random
from datetime import timedelta

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.core.profile import Profile, load_profile
from driftline.core.records import ValidReading, reading_id
from driftline.core.settings import DEFAULT_PROFILE
from driftline.simulate.inject import MALFORMED_KINDS, malform
from driftline.streaming.messages import Message
from driftline.validation.batch import ReadingValidator
from tests.fuzz_messages import Case, message_cases
from tests.hostile_messages import hostile_message
from tests.unit.factories import NOW, iso, message, reading_doc

PROFILE: Profile = load_profile(DEFAULT_PROFILE)
MAX_BYTES = 2048


def validator(**kwargs: object) -> ReadingValidator:
    return ReadingValidator(PROFILE, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def assert_same_verdict(messages: list[Message], v: ReadingValidator | None = None) -> None:
    v = v or validator(max_message_bytes=MAX_BYTES)
    old = v.validate(messages)
    new = v.validate_wire(messages)
    assert [m.offset for m, _ in new.valid] == [m.offset for m, _ in old.valid]
    for (_, reading), (_, payload), rid, sensor in zip(
        old.valid, new.valid, new.reading_ids, new.sensor_ids, strict=True
    ):
        assert ValidReading.model_validate_json(payload) == reading
        assert orjson.loads(payload) == orjson.loads(reading.to_bytes())  # every field present
        assert (rid, sensor) == (reading.reading_id, reading.sensor_id)
    assert [(m.offset, d.model_dump(exclude={"failed_at"})) for m, d in new.invalid] == [
        (m.offset, d.model_dump(exclude={"failed_at"})) for m, d in old.invalid
    ]


def messages_of(payloads: list[bytes | None], keys: list[bytes | None] | None = None) -> list:
    keys = keys or [b"pump-001"] * len(payloads)
    return [Message("raw", 0, i, k, p) for i, (k, p) in enumerate(zip(keys, payloads, strict=True))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=message_cases(PROFILE, NOW, "w", max_bytes=MAX_BYTES, min_size=20, max_size=120))
def test_generated_messages_get_the_reference_verdict(cases: list[Case]) -> None:
    assert_same_verdict([Message("raw", 0, i, c.key, c.value) for i, c in enumerate(cases)])


def test_simulated_batches_with_every_malformed_kind_get_the_reference_verdict() -> None:
    rng = random.Random(7)
    payloads, keys = [], []
    for k in range(3000):
        sensor = f"pump-{k % 7 + 1:03d}"
        doc = reading_doc(sensor, NOW - timedelta(seconds=3000 - k), seq=k, label=k % 2)
        doc["values"] = {f: v * (1 + rng.uniform(-0.05, 0.05)) for f, v in doc["values"].items()}
        if rng.random() < 0.1:
            payloads.append(malform(rng.choice(MALFORMED_KINDS), doc, PROFILE.features, rng))
        else:
            payloads.append(orjson.dumps(doc))
        keys.append(sensor.encode())
    messages = messages_of(payloads, keys)
    v = validator()
    decoded = v._decoder.decode(payloads)  # noqa: SLF001
    assert decoded.slow.mean() < 0.2  # the canonical readings take the columnar path
    assert_same_verdict(messages, v)


def test_columnar_reading_ids_are_the_reading_id_function() -> None:
    docs = [reading_doc(f"pump-{i:03d}", NOW - timedelta(seconds=i), seq=i) for i in range(50)]
    docs += [reading_doc("pump-001", NOW - timedelta(microseconds=7), seq=None)]
    decoded = validator()._decoder.decode([orjson.dumps(d) for d in docs])  # noqa: SLF001
    assert not decoded.slow.any()
    for doc, rid in zip(docs, decoded.reading_id, strict=True):
        ts = NOW.fromisoformat(doc["ts"])
        assert rid == reading_id(doc["sensor_id"], ts, doc.get("seq"))


def test_canonical_looking_messages_that_break_a_rule_get_the_reference_verdict() -> None:
    good = reading_doc("pump-001", label=0)
    raw = orjson.dumps(good)
    payloads = [
        raw,
        raw,  # in-batch duplicate: the first wins
        raw.replace(b'"seq":1', b'"seq":1,"seq":2'),  # a key twice
        raw.replace(b'"seq":1', b'"seq":99999999999999999999999'),  # beyond 64 bits
        raw.replace(b'"seq":1', b'"seq":9223372036854775808'),  # 2**63
        raw.replace(b'"label":0', b'"label":true'),
        raw.replace(b'"label":0', b'"label":1.0'),
        raw.replace(b'"Current":2.4', b'"Current":2'),  # an integer: accepted, as a float
        raw.replace(b'"Current":2.4', b'"Current":true'),
        raw.replace(b'"Current":2.4', b'"Current":null'),
        raw.replace(b'"Current":2.4', b'"Current":1e999'),
        raw.replace(b'"Current":2.4', b'"Current":123456789012345678901234'),
        raw.replace(b'"Current":2.4', b'"Current":-1000.5'),  # out of range
        raw.replace(b'"Current":2.4', b'"Current":NaN'),
        raw.replace(b'"pump-001"', b'"pump-\\u0030\\u00301"'),  # escapes: same sensor
        raw.replace(b'"pump-001"', b'"nobody:1"'),  # unknown sensor with a colon
        raw.replace(b'"pump-001"', b'"pump-\\ud800"'),  # lone surrogate
        raw.replace(b"Z", b"+00:00"),
        raw.replace(b".000000Z", b"Z").replace(b'seq":1', b'seq":3'),
        raw.replace(b"2024-05-01", b"2024-02-30"),
        raw.replace(b"2024-05-01", b"2124-05-01"),  # in the future
        raw.replace(b"2024-05-01", b"1960-05-01"),  # implausible
        raw.replace(b"2024-05-01", b"2021-05-01"),  # too old
        b"\xef\xbb\xbf" + raw,
        b" " + raw,
        orjson.dumps({**good, "v": 1, "seq": 4}),
        orjson.dumps({k: v for k, v in good.items() if k not in ("seq", "label")}),
        orjson.dumps({**good, "seq": None, "label": None, "ts": iso(NOW)}),
        orjson.dumps({**good, "values": {**good["values"], "extra": 1.0}}),
        orjson.dumps({**good, "seq": 5, "values": dict(list(good["values"].items())[1:])}),
        raw.replace(b"{", b"[", 1),
        None,
    ]
    keys: list[bytes | None] = [b"pump-001"] * len(payloads)
    keys[1] = None
    keys[0] = b"pump-002"  # key mismatch on the first: the copy after it is accepted
    assert_same_verdict(messages_of(payloads, keys))


def test_a_reading_seen_in_an_earlier_batch_is_a_duplicate_on_both_paths() -> None:
    v = validator()
    first = messages_of([orjson.dumps(reading_doc(seq=s)) for s in range(3)])
    verdict = v.validate_wire(first)
    v.remember_wire(verdict)
    again = messages_of([orjson.dumps(reading_doc(seq=s)) for s in range(1, 5)])
    assert_same_verdict(again, v)
    assert [d.reasons[0].check for _, d in v.validate_wire(again).invalid] == ["not_duplicate"] * 2


def test_a_forgotten_verdict_validates_the_same_again_and_spares_earlier_ones() -> None:
    """The validator remembers a batch's readings before its records are acknowledged
    (batches in flight) and forgets them when they are not: the batch, handled again, is
    no duplicate of itself, and readings remembered before it stay remembered."""
    v = validator()
    earlier = v.validate_wire(messages_of([orjson.dumps(reading_doc(seq=0))]))
    v.remember_wire(earlier)
    batch = messages_of([orjson.dumps(reading_doc(seq=s)) for s in range(4)])
    verdict = v.validate_wire(batch)
    v.remember_wire(verdict)
    v.forget_wire(verdict)  # publishing failed
    again = v.validate_wire(batch)
    assert again.reading_ids == verdict.reading_ids
    assert len(again.valid) == 3
    assert [d.reasons[0].check for _, d in again.invalid] == ["not_duplicate"]
    assert earlier.reading_ids[0] in v.recent


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hostile_messages_on_a_canonical_reading_get_the_reference_verdict(
    data: st.DataObject,
) -> None:
    ts = NOW - timedelta(seconds=data.draw(st.integers(0, 3600)))
    doc = reading_doc("pump-007", ts, label=0)
    hostile = data.draw(hostile_message(doc, 64 * 1024))
    batch = [orjson.dumps(doc), hostile.value, orjson.dumps({**doc, "seq": 2})]
    assert_same_verdict(messages_of(batch, [b"pump-007", hostile.key, b"pump-007"]), validator())


def test_a_batch_that_breaks_the_columnar_path_is_validated_by_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v = validator()
    docs = [reading_doc(seq=s) for s in range(3)]

    def broken(raws: object) -> None:
        raise RuntimeError("a bug in the columns")

    monkeypatch.setattr(v._decoder, "decode", broken)  # noqa: SLF001
    verdict = v.validate_wire_isolating_errors([message(d) for d in docs])
    assert len(verdict.valid) == 3 and not verdict.invalid
    for (_, raw), rid in zip(verdict.valid, verdict.reading_ids, strict=True):
        assert ValidReading.model_validate_json(raw).reading_id == rid
