"""ReadingValidator on thousands of generated messages (tests/fuzz_messages.py): valid
readings mixed with every kind of bad input. Each message gets exactly one verdict (accepted,
or dead-lettered with reasons that say what was wrong) and no exception escapes."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings

from driftline.core.profile import Profile, load_profile
from driftline.core.settings import DEFAULT_PROFILE
from driftline.store.raw_store import key_columns
from driftline.streaming.messages import Message
from driftline.validation.batch import ReadingValidator
from driftline.validation.parsing import parse_timestamp
from tests.fuzz_messages import Case, message_cases
from tests.unit.factories import NOW, message, reading_doc

PROFILE: Profile = load_profile(DEFAULT_PROFILE)
MAX_BYTES = 2048
EXAMPLES = 80
seen = Counter[str]()


def check_verdicts(cases: list[Case], validator: ReadingValidator) -> None:
    messages = [Message("raw", 0, i, c.key, c.value) for i, c in enumerate(cases)]
    verdict = validator.validate(messages)  # not the isolating variant: nothing may raise

    accepted = {m.offset: r for m, r in verdict.valid}
    rejected = {m.offset: d for m, d in verdict.invalid}
    assert len(accepted) + len(rejected) == len(cases) == len(verdict.valid) + len(verdict.invalid)
    assert not accepted.keys() & rejected.keys()
    for i, case in enumerate(cases):
        seen[case.kind] += 1
        if i in rejected:
            reasons = rejected[i].reasons
            assert reasons, case
            assert all(r.check and r.detail for r in reasons), reasons
            assert "internal_error" not in {r.check for r in reasons}
            if case.group is not None:  # a valid reading or a copy: the one not accepted
                assert {r.check for r in reasons} == {"not_duplicate"}, (case, reasons)
                continue
            assert case.valid is not True, (case, reasons)
            if case.checks:
                assert case.checks & {r.check for r in reasons}, (case, reasons)
        else:
            assert case.valid is not False, case
            if case.group is not None:
                assert accepted[i].reading_id == case.group

    # Of each valid reading and its resent copies, exactly one is accepted.
    groups = Counter(c.group for c in cases if c.group is not None)
    accepted_groups = Counter(r.reading_id for r in accepted.values() if r.reading_id in groups)
    assert accepted_groups == Counter(dict.fromkeys(groups, 1))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    cases=message_cases(
        PROFILE, NOW, "u", max_bytes=MAX_BYTES, min_size=20, max_size=120, keys_checked=True
    )
)
def test_every_generated_message_gets_one_verdict_with_reasons(cases: list[Case]) -> None:
    # A fresh validator per batch: valid readings of one example are unique, not across them.
    validator = ReadingValidator(PROFILE, max_message_bytes=MAX_BYTES, clock=lambda: NOW)
    check_verdicts(cases, validator)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases=message_cases(PROFILE, NOW, "s", max_bytes=MAX_BYTES, min_size=5, max_size=40))
def test_a_verdict_does_not_depend_on_the_batch_it_is_in(cases: list[Case]) -> None:
    """One at a time, each message gets the verdict it gets inside the batch (resent copies
    aside: which one counts as the duplicate depends on order)."""
    together = ReadingValidator(PROFILE, max_message_bytes=MAX_BYTES, clock=lambda: NOW)
    alone = ReadingValidator(
        PROFILE, max_message_bytes=MAX_BYTES, clock=lambda: NOW, dedup_capacity=0
    )
    messages = [Message("raw", 0, i, c.key, c.value) for i, c in enumerate(cases)]
    batch = together.validate(messages)
    in_batch = {m.offset: sorted((r.check, r.column) for r in d.reasons) for m, d in batch.invalid}
    for i, one_message in enumerate(messages):
        if cases[i].kind == "duplicate" or cases[i].group is not None:
            continue
        one = alone.validate([one_message])
        assert sorted(
            (r.check, r.column) for _, d in one.invalid for r in d.reasons
        ) == in_batch.get(i, []), cases[i]


@pytest.mark.parametrize(
    "ts", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:30+00:31"]
)
def test_a_time_that_leaves_the_calendar_in_utc_is_a_wrong_type_not_a_crash(ts: str) -> None:
    """Found by the fuzz test: converting these to UTC overflows; the validator raised and
    ingest's key columns (the same parse) would have retried its batch forever."""
    assert parse_timestamp(ts) is None
    doc = reading_doc(ts=ts)
    verdict = ReadingValidator(PROFILE, clock=lambda: NOW).validate([message(doc)])
    assert [(r.check, r.column) for _, d in verdict.invalid for r in d.reasons] == [
        ("wrong_type", "ts")
    ]
    assert key_columns(message(doc)).event_ts is None


def test_zz_report_counts() -> None:
    print(f"\nvalidator fuzz: {sum(seen.values())} messages by kind: {dict(sorted(seen.items()))}")
