"""What a restarted drift worker skips (driftline.drift_recovery), as pure logic."""

from __future__ import annotations

from datetime import timedelta

from driftline.drift.recovery import Emitted, emitted_from
from driftline.streaming.messages import Message
from tests.unit.factories import NOW, valid_reading
from tests.unit.test_policy import event


def on_topic(*values: bytes) -> list[Message]:
    return [Message("drift", 0, i, None, v) for i, v in enumerate(values)]


def test_the_latest_window_end_per_sensor_and_undecodable_events_ignored() -> None:
    late = event("pump-001").model_copy(update={"window_end": NOW + timedelta(hours=2)})
    early = event("pump-001").model_copy(update={"window_end": NOW + timedelta(hours=1)})
    other = event("pump-002")
    emitted = emitted_from(on_topic(late.to_bytes(), b"{", early.to_bytes(), other.to_bytes()), 5)
    assert emitted == {
        "pump-001": Emitted(NOW + timedelta(hours=2), 5),
        "pump-002": Emitted(other.window_end, 5),
    }


def test_only_readings_published_before_the_start_and_inside_a_window_are_held() -> None:
    done = Emitted(NOW, started_ms=1_000)
    assert done.holds(valid_reading(ts=NOW), published_ms=999)
    assert not done.holds(valid_reading(ts=NOW + timedelta(seconds=1)), published_ms=999)
    assert not done.holds(valid_reading(ts=NOW), published_ms=1_000)  # new since the start
    assert not done.holds(valid_reading(ts=NOW), published_ms=None)
