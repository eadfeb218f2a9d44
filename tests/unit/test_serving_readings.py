"""Serving's columnar batch check against the reference it replaces: each reading encoded
again and validated by ``ReadingValidator.validate`` (``parse_reading`` per reading). Same
reasons, same valid readings, same columns, on generated batches of good and hostile readings."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings

from driftline.core.profile import Profile, load_profile
from driftline.core.records import epoch_ns
from driftline.core.settings import DEFAULT_PROFILE
from driftline.serving.readings import BatchChecker
from driftline.streaming.messages import Message
from driftline.validation.batch import ReadingValidator
from driftline.validation.strict_json import MalformedJson, load_json
from tests.fuzz_messages import Case, message_cases
from tests.unit.factories import NOW, reading_doc

PROFILE: Profile = load_profile(DEFAULT_PROFILE)
MAX_BYTES = 2048


def validator(max_bytes: int = MAX_BYTES) -> ReadingValidator:
    return ReadingValidator(
        PROFILE, max_message_bytes=max_bytes, dedup_capacity=0, stage="serving", clock=lambda: NOW
    )


def as_served(value: bytes | None) -> Any:
    """What the scorer gets of a message sent as a request body: the strictly decoded JSON,
    encoded and decoded again on its way through BentoML; None if the middleware refuses it."""
    if value is None:
        return None
    try:
        return orjson.loads(orjson.dumps(load_json(value)))
    except (MalformedJson, orjson.JSONEncodeError):
        return None


def assert_same_verdict(docs: list[Any], max_bytes: int = MAX_BYTES) -> None:
    reference = validator(max_bytes).validate(
        [Message("serving", 0, i, None, orjson.dumps(d)) for i, d in enumerate(docs)]
    )
    checked = BatchChecker(validator(max_bytes), "serving").check(docs)

    expected = {
        m.offset: [r.model_dump(mode="json") for r in d.reasons] for m, d in reference.invalid
    }
    assert checked.reasons == expected
    assert checked.positions == [m.offset for m, _ in reference.valid]
    assert checked.readings() == [r for _, r in reference.valid]
    assert checked.sensor_ids == [r.sensor_id for _, r in reference.valid]
    assert checked.stamps.tolist() == [epoch_ns(r.ts) for _, r in reference.valid]
    assert checked.values.shape == (len(reference.valid), len(PROFILE.features))
    rows = [[r.values[f] for f in PROFILE.features] for _, r in reference.valid]
    np.testing.assert_array_equal(checked.values, np.array(rows).reshape(checked.values.shape))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases=message_cases(PROFILE, NOW, "c", max_bytes=MAX_BYTES, min_size=10, max_size=80))
def test_the_columnar_check_gives_the_reference_verdict(cases: list[Case]) -> None:
    docs = [doc for c in cases if (doc := as_served(c.value)) is not None]
    assert_same_verdict(docs)


def test_plain_readings_and_their_near_misses() -> None:
    good = reading_doc()
    docs: list[Any] = [
        good,
        reading_doc(seq=None),
        reading_doc(label=1),
        reading_doc(label=1.0),  # parsed the slow way, accepted
        reading_doc(label=2),
        reading_doc(v=1),
        reading_doc(v=2),
        reading_doc(v=True),
        reading_doc(seq=-1),
        reading_doc(seq=True),
        reading_doc(values={"Current": 3}),  # an integer: parsed the slow way, accepted
        reading_doc(values={"Current": None}),
        reading_doc(values={"Current": "3"}),
        reading_doc(values={"Current": 1e9}),  # out of range: the schema says so
        reading_doc(values={"Nope": 1.0}),
        {k: v for k, v in good.items() if k != "ts"},
        reading_doc(ts="yesterday"),
        reading_doc(ts="2026-01-01T00:00:00.000000000000000000000000000000000000001+00:00"),
        reading_doc(ts="1900-01-01T00:00:00Z"),
        reading_doc(sensor_id=""),
        reading_doc(sensor_id="x" * 129),
        reading_doc(sensor_id="unknown sensor"),
        reading_doc(extra=1),
        [good],
        "a string",
        None,
    ]
    assert_same_verdict(docs)
    assert_same_verdict([good, reading_doc(sensor_id="y" * 100)], max_bytes=300)  # too large


def test_an_empty_batch_and_an_all_invalid_one() -> None:
    assert_same_verdict([])
    assert_same_verdict([None, reading_doc(v=2)])
