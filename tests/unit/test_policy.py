"""RetrainPolicy: when drift is real enough to retrain, and when a retraining must wait."""

from __future__ import annotations

import itertools
from datetime import timedelta

from driftline.core.records import DriftEvent, FeatureDrift
from driftline.trigger.policy import PolicyConfig, RetrainPolicy
from tests.unit.factories import NOW

_windows = itertools.count()


def event(
    sensor: str = "pump-001", share: float = 1.0, flatlined: list[str] | None = None
) -> DriftEvent:
    """A drift event of the next window of ``sensor`` (each window one minute later)."""
    n = next(_windows)
    start = NOW + timedelta(minutes=n)
    return DriftEvent(
        event_id=f"ev-{n}",
        sensor_id=sensor,
        window_start=start,
        window_end=start + timedelta(seconds=59),
        window_size=60,
        reference_id="ref-1",
        features=[
            FeatureDrift(
                feature="Current",
                stattest="wasserstein",
                statistic=share,
                threshold=0.5,
                drifted=share >= 0.5,
            )
        ],
        drift_share=share,
        flatlined=flatlined or [],
        drifted=share >= 0.5 or bool(flatlined),
        closed_by="count",
    )


def config(**kwargs: float) -> PolicyConfig:
    values: dict[str, float] = {
        "share_threshold": 0.5,
        "consecutive_windows": 3,
        "min_sensors": 1,
        "cooldown_seconds": 3600.0,
        "max_run_seconds": 7200.0,
    }
    values.update(kwargs)
    return PolicyConfig(**values)  # type: ignore[arg-type]


def test_fires_after_k_consecutive_drifted_windows() -> None:
    policy = RetrainPolicy(config(consecutive_windows=3))
    events = [event(share=0.6) for _ in range(3)]
    first, second, third = (policy.observe(e, NOW) for e in events)
    assert not first.fired and not second.fired
    assert "1/3" in first.reason and "2/3" in second.reason
    assert third.fired
    assert "3/3" in third.reason and "retraining" in third.reason
    assert third.sensors == ["pump-001"]
    assert third.drift_event_ids == [e.event_id for e in events]
    assert third.data_start == events[0].window_start
    assert third.data_end == events[2].window_end
    assert policy.last_fired_at == NOW
    assert policy.in_flight_since == NOW
    assert policy.streak("pump-001") == 0


def test_the_share_threshold_is_inclusive() -> None:
    policy = RetrainPolicy(config(consecutive_windows=1, share_threshold=0.5))
    assert not policy.observe(event(share=0.49), NOW).fired
    assert policy.observe(event(share=0.5), NOW).fired


def test_a_window_below_the_threshold_resets_the_streak() -> None:
    policy = RetrainPolicy(config(consecutive_windows=3))
    policy.observe(event(share=1.0), NOW)
    policy.observe(event(share=1.0), NOW)
    assert policy.streak("pump-001") == 2
    calm = policy.observe(event(share=0.1), NOW)
    assert not calm.fired
    assert "streak reset" in calm.reason
    assert policy.streak("pump-001") == 0
    decisions = [policy.observe(event(), NOW) for _ in range(3)]
    assert [d.fired for d in decisions] == [False, False, True]
    assert len(decisions[-1].drift_event_ids) == 3  # the windows before the reset are not in it


def test_a_flatlined_window_counts_as_drifted() -> None:
    policy = RetrainPolicy(config(consecutive_windows=2))
    policy.observe(event(share=0.0, flatlined=["Current"]), NOW)
    assert policy.streak("pump-001") == 1
    assert policy.observe(event(share=0.0, flatlined=["Current"]), NOW).fired


def test_streaks_are_per_sensor() -> None:
    policy = RetrainPolicy(config(consecutive_windows=2))
    policy.observe(event("pump-a"), NOW)
    # Another sensor's calm window does not reset pump-a's streak.
    policy.observe(event("pump-b", share=0.0), NOW)
    assert policy.streak("pump-a") == 1
    decision = policy.observe(event("pump-a"), NOW)
    assert decision.fired
    assert decision.sensors == ["pump-a"]


def test_min_sensors_must_be_drifted_at_once() -> None:
    policy = RetrainPolicy(config(consecutive_windows=2, min_sensors=2))
    a = [event("pump-a") for _ in range(2)]
    assert not any(policy.observe(e, NOW).fired for e in a)
    assert policy.streak("pump-a") == 2
    b1 = event("pump-b")
    decision = policy.observe(b1, NOW)
    assert not decision.fired and "1/2 sensors" in decision.reason
    b2 = event("pump-b")
    decision = policy.observe(b2, NOW)
    assert decision.fired
    assert decision.sensors == ["pump-a", "pump-b"]
    assert sorted(decision.drift_event_ids) == sorted(e.event_id for e in [*a, b1, b2])
    assert decision.data_start == a[0].window_start
    assert decision.data_end == b2.window_end
    assert policy.streak("pump-a") == policy.streak("pump-b") == 0


def test_a_sensor_recovering_stops_counting_toward_min_sensors() -> None:
    policy = RetrainPolicy(config(consecutive_windows=1, min_sensors=2))
    policy.observe(event("pump-a"), NOW)
    policy.observe(event("pump-a", share=0.0), NOW)
    assert not policy.observe(event("pump-b"), NOW).fired


def test_sensors_below_k_are_left_out_of_the_decision() -> None:
    policy = RetrainPolicy(config(consecutive_windows=2))
    policy.observe(event("pump-b"), NOW)
    policy.observe(event("pump-a"), NOW)
    decision = policy.observe(event("pump-a"), NOW)
    assert decision.sensors == ["pump-a"]
    assert policy.streak("pump-b") == 1  # its streak carries on


def test_cooldown_blocks_a_second_firing_then_lets_one_through() -> None:
    policy = RetrainPolicy(config(consecutive_windows=1, cooldown_seconds=600))
    assert policy.observe(event(), NOW).fired
    policy.run_finished()
    blocked = policy.observe(event(), NOW + timedelta(seconds=599))
    assert not blocked.fired
    assert "cooling down until" in blocked.reason
    assert (NOW + timedelta(seconds=600)).isoformat() in blocked.reason
    later = NOW + timedelta(seconds=600)
    decision = policy.observe(event(), later)
    assert decision.fired
    # Windows seen during the cooldown are part of the request.
    assert len(decision.drift_event_ids) == 2
    assert policy.last_fired_at == later


def test_a_cooldown_from_before_a_restart_is_honoured() -> None:
    policy = RetrainPolicy(
        config(consecutive_windows=1, cooldown_seconds=600),
        last_fired_at=NOW - timedelta(seconds=100),
    )
    assert not policy.observe(event(), NOW).fired
    assert policy.observe(event(), NOW + timedelta(seconds=500)).fired


def test_a_run_in_flight_blocks_until_it_finishes() -> None:
    policy = RetrainPolicy(config(consecutive_windows=1, cooldown_seconds=0))
    assert policy.observe(event(), NOW).fired
    blocked = policy.observe(event(), NOW + timedelta(minutes=10))
    assert not blocked.fired
    assert "in flight" in blocked.reason
    policy.run_finished()
    assert policy.in_flight_since is None
    assert policy.observe(event(), NOW + timedelta(minutes=11)).fired


def test_a_stuck_run_no_longer_blocks() -> None:
    started = NOW - timedelta(hours=1)
    policy = RetrainPolicy(
        config(consecutive_windows=1, max_run_seconds=7200, cooldown_seconds=0),
        in_flight_since=started,
    )
    assert not policy.observe(event(), started + timedelta(seconds=7200)).fired
    decision = policy.observe(event(), started + timedelta(seconds=7201))
    assert decision.fired
    assert policy.in_flight_since == started + timedelta(seconds=7201)


def test_a_stuck_run_still_respects_the_cooldown() -> None:
    fired = NOW
    policy = RetrainPolicy(
        config(consecutive_windows=1, max_run_seconds=60, cooldown_seconds=600),
        last_fired_at=fired,
        in_flight_since=fired,
    )
    decision = policy.observe(event(), fired + timedelta(seconds=120))
    assert not decision.fired
    assert "cooling down" in decision.reason
    assert policy.in_flight_since is None


def test_a_calm_window_never_fires_even_when_allowed() -> None:
    policy = RetrainPolicy(config(consecutive_windows=1))
    decision = policy.observe(event(share=0.0), NOW)
    assert decision == type(decision)(fired=False, reason=decision.reason)
    assert decision.sensors == [] and decision.drift_event_ids == []
    assert decision.data_start is None and decision.data_end is None
    assert policy.last_fired_at is None
