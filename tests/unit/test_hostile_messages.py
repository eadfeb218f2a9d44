"""The hostile-message strategies' own check: none of them is a valid reading, and the
validator gives each a reason without crashing (no internal_error)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.core.profile import load_profile
from driftline.core.settings import DEFAULT_PROFILE
from driftline.streaming.messages import Message
from driftline.validation.batch import ReadingValidator
from tests.hostile_messages import hostile_message
from tests.unit.factories import NORMAL_VALUES

VALIDATOR = ReadingValidator(load_profile(DEFAULT_PROFILE))  # the real clock: ts is recent


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_no_hostile_message_passes_and_none_crashes(data: st.DataObject) -> None:
    validator = VALIDATOR
    ts = datetime.now(UTC) - timedelta(seconds=data.draw(st.integers(0, 3600)))
    doc = {"sensor_id": "pump-007", "ts": ts.isoformat(), "seq": 1, "values": dict(NORMAL_VALUES)}
    hostile = data.draw(hostile_message(doc, 64 * 1024))
    verdict = validator.validate([Message("raw", 0, 0, hostile.key, hostile.value)])
    assert verdict.valid == [], hostile
    ((_, letter),) = verdict.invalid
    checks = {r.check for r in letter.reasons}
    assert checks and "internal_error" not in checks, (hostile, letter)
    assert letter.to_bytes()  # and its dead letter serialises
