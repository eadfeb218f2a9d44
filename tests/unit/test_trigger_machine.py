"""The retrain-trigger's state machine (driftline.trigger.machine), with its side effects as
stand-ins: pending decisions, the run in flight, relaunches, cooldown, restart recovery, and
a database error at each step that must lose nothing and start nothing twice."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError

from driftline.core.recent_ids import RecentIds
from driftline.core.records import DriftEvent, LabelledPerformance, RetrainRequest
from driftline.labels.performance import LabelledRule
from driftline.labels.trigger_rule import LabelledOutcome, LabelledTrigger
from driftline.trigger.ledger import RecordedRun, RunStatus
from driftline.trigger.machine import Pending, Trigger
from driftline.trigger.policy import RetrainPolicy
from driftline.trigger.relaunch import RelaunchRule, relaunch_id, relaunch_request
from driftline.trigger.store import policy_from
from tests.unit.factories import NOW
from tests.unit.test_policy import config, event


def db_error() -> OperationalError:
    return OperationalError("INSERT ...", {}, Exception("MariaDB went away"))


class FakeLauncher:
    name = "fake"

    def __init__(self) -> None:
        self.launched: list[RetrainRequest] = []
        self.attempts: list[int] = []
        self.statuses: dict[str, RunStatus] = {}
        self.fail_with: Exception | None = None

    def launch(self, request: RetrainRequest, attempt: int = 0) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.launched.append(request)
        self.attempts.append(attempt)
        self.statuses[request.request_id] = "running"
        return request.request_id

    def status(self, run_id: str) -> RunStatus:
        return self.statuses.get(run_id, "failed")

    def reconcile(self) -> list[str]:
        return []


class FakeLedger:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.down = False

    def record(self, request: RetrainRequest, launcher: str, status: str, attempt: int = 0) -> None:
        if self.down:
            raise db_error()
        self.rows.setdefault(request.request_id, status)

    def set_status(self, request_id: str, status: str, detail: str | None = None) -> None:
        if self.down:
            raise db_error()
        self.rows[request_id] = status

    def latest(self) -> tuple[datetime, str] | None:
        return None


class FakeDecisions:
    def __init__(self) -> None:
        self.drift: list[tuple[str, bool]] = []
        self.labelled: list[str] = []
        self.held: list[tuple[str, int, str]] = []
        self.reasons: list[str] = []
        self.streaks: list[int] = []
        self.down = False

    def record_drift(self, event: DriftEvent, decided: Pending) -> None:
        if self.down:
            raise db_error()
        self.drift.append((event.event_id, decided.decision.fired))
        self.reasons.append(decided.decision.reason)
        self.streaks.append(decided.decision.streak)

    def record_labelled(self, event: LabelledPerformance, outcome: LabelledOutcome) -> None:
        self.labelled.append(event.event_id)

    def record_held_relaunch(
        self, failed: RetrainRequest, attempt: int, reason: str, decided_at: datetime
    ) -> None:
        self.held.append((failed.request_id, attempt, reason))


class Rig:
    """A Trigger over stand-ins, with a clock the test moves."""

    def __init__(
        self,
        policy: RetrainPolicy | None = None,
        attempts: int = 2,
        max_age_seconds: float = float("inf"),
    ) -> None:
        self.policy = policy or RetrainPolicy(config(cooldown_seconds=600))
        self.launcher = FakeLauncher()
        self.ledger = FakeLedger()
        self.decisions = FakeDecisions()
        self.published: list[RetrainRequest] = []
        self.kafka_down = False
        self.monotonic = 1000.0
        self.wall = NOW + timedelta(hours=1)
        self.trigger = Trigger(
            self.policy,
            LabelledTrigger(LabelledRule(f1_threshold=0.5, min_readings=10), self.policy),
            self.launcher,
            self.ledger,
            self.decisions,
            self.publish,
            RelaunchRule(attempts, backoff_seconds=10.0, max_age_seconds=max_age_seconds),
            RecentIds(100),
            clock=lambda: self.monotonic,
            now=lambda: self.wall,
        )

    async def publish(self, request: RetrainRequest) -> None:
        if self.kafka_down:
            raise ConnectionError("Kafka is away")
        self.published.append(request)

    def wait(self, seconds: float) -> None:
        self.monotonic += seconds
        self.wall += timedelta(seconds=seconds)

    async def first_relaunch(self) -> tuple[RetrainRequest, RetrainRequest]:
        """An episode whose run fails, and its first relaunch once due (10 s later)."""
        await self.episode()
        (first,) = self.launcher.launched
        self.launcher.statuses[first.request_id] = "failed"
        await self.trigger.tick()
        self.wait(10)
        await self.trigger.tick()
        return first, self.launcher.launched[-1]

    async def episode(self, sensor: str = "pump-001") -> list[DriftEvent]:
        events = [event(sensor) for _ in range(3)]
        for e in events:
            await self.trigger.on_drift(e)
        return events


async def test_a_fired_decision_is_published_launched_and_recorded_once() -> None:
    rig = Rig()
    events = await rig.episode()
    assert rig.decisions.drift == [(e.event_id, e is events[-1]) for e in events]
    (request,) = rig.published
    assert [r.request_id for r in rig.launcher.launched] == [request.request_id]
    assert request.drift_event_ids == [e.event_id for e in events]
    assert rig.trigger.in_flight is not None and rig.trigger.in_flight.run_id == request.request_id
    await rig.trigger.on_drift(events[-1])  # redelivered
    assert len(rig.decisions.drift) == 3 and len(rig.published) == 1


async def test_a_pending_decision_survives_a_database_error_and_is_not_observed_twice() -> None:
    rig = Rig()
    first, second, third = (event() for _ in range(3))
    await rig.trigger.on_drift(first)
    await rig.trigger.on_drift(second)
    rig.decisions.down = True
    with pytest.raises(OperationalError):
        await rig.trigger.on_drift(third)  # published and launched, not recorded
    assert third.event_id in rig.trigger.pending
    rig.decisions.down = False
    await rig.trigger.on_drift(third)  # the retried batch
    assert rig.decisions.drift[-1] == (third.event_id, True)
    assert len(rig.published) == 1 and len(rig.launcher.launched) == 1
    assert rig.trigger.pending == {}
    assert rig.policy.streak("pump-001") == 0  # counted once, then spent on the firing


async def test_a_launch_the_database_refuses_is_launched_again_not_counted_failed() -> None:
    rig = Rig()
    rig.launcher.fail_with = db_error()  # the launcher could not record the run: none started
    first, second, third = (event() for _ in range(3))
    await rig.trigger.on_drift(first)
    await rig.trigger.on_drift(second)
    with pytest.raises(OperationalError):
        await rig.trigger.on_drift(third)
    assert rig.ledger.rows == {} and rig.trigger.relaunch is None and rig.trigger.in_flight is None
    rig.launcher.fail_with = None
    await rig.trigger.on_drift(third)  # the retried batch
    (request,) = rig.published
    assert [r.request_id for r in rig.launcher.launched] == [request.request_id]
    assert rig.decisions.drift[-1] == (third.event_id, True)


async def test_a_run_in_flight_holds_new_episodes_until_it_finishes_then_cooldown() -> None:
    rig = Rig()
    await rig.episode("pump-001")
    (run_id,) = rig.launcher.statuses
    rig.wait(60)
    await rig.episode("pump-002")
    assert "in flight" in _last_reason(rig)
    rig.launcher.statuses[run_id] = "succeeded"
    await rig.trigger.tick()
    assert rig.trigger.in_flight is None and rig.policy.in_flight_since is None
    await rig.episode("pump-003")
    assert "cooling down" in _last_reason(rig) and "in flight" not in _last_reason(rig)
    rig.wait(600)
    await rig.episode("pump-004")
    assert len(rig.launcher.launched) == 2


async def test_a_firing_records_the_streak_its_own_sensor_keeps() -> None:
    """pump-003's first drifted window fires for pump-002 (drifted during the cooldown):
    pump-003's streak of 1 is not consumed, and is what a restart must restore."""
    rig = Rig()
    await rig.episode("pump-001")
    (run_id,) = rig.launcher.statuses
    rig.launcher.statuses[run_id] = "succeeded"
    await rig.trigger.tick()
    await rig.episode("pump-002")  # held: cooling down
    rig.wait(600)
    third = event("pump-003")
    await rig.trigger.on_drift(third)
    assert rig.decisions.drift[-1] == (third.event_id, True)
    assert rig.decisions.streaks[-1] == 1 == rig.policy.streak("pump-003")
    assert rig.published[-1].sensors == ["pump-002"]


def _last_reason(rig: Rig) -> str:
    return rig.decisions.reasons[-1]


async def test_a_failed_run_is_relaunched_with_doubling_waits_then_given_up() -> None:
    rig = Rig(attempts=2)
    await rig.episode()
    (first,) = rig.launcher.launched
    rig.launcher.statuses[first.request_id] = "failed"
    await rig.trigger.tick()
    relaunch = rig.trigger.relaunch
    assert relaunch is not None and relaunch.attempt == 1
    assert relaunch.due == pytest.approx(rig.monotonic + 10)
    rig.wait(9)
    await rig.trigger.tick()
    assert len(rig.launcher.launched) == 1  # not due yet
    rig.wait(1)
    await rig.trigger.tick()
    second = rig.launcher.launched[-1]
    assert second.reason.startswith(f"relaunch 1 of {first.request_id}")
    assert (second.data_start, second.data_end) == (first.data_start, first.data_end)
    assert rig.published[-1] == second and rig.trigger.relaunch is None
    rig.launcher.statuses[second.request_id] = "failed"
    await rig.trigger.tick()
    assert rig.trigger.relaunch is not None
    assert rig.trigger.relaunch.due == pytest.approx(rig.monotonic + 20)  # doubled
    rig.wait(20)
    await rig.trigger.tick()
    third = rig.launcher.launched[-1]
    rig.launcher.statuses[third.request_id] = "failed"
    await rig.trigger.tick()
    assert rig.trigger.relaunch is None and rig.trigger.in_flight is None  # given up
    assert rig.policy.in_flight_since is None
    assert len(rig.launcher.launched) == 3


async def test_a_launch_that_fails_is_recorded_failed_and_relaunched() -> None:
    rig = Rig(attempts=1)
    rig.launcher.fail_with = RuntimeError("KFP is away")
    await rig.episode()
    (request,) = rig.published
    assert rig.ledger.rows == {request.request_id: "failed"}
    assert rig.trigger.relaunch is not None and rig.trigger.in_flight is None
    rig.wait(10)
    await rig.trigger.tick()  # fails again: recorded, and no relaunch left
    assert len(rig.published) == 2 and len(rig.ledger.rows) == 2
    assert set(rig.ledger.rows.values()) == {"failed"}
    assert rig.trigger.relaunch is None and rig.policy.in_flight_since is None


@pytest.mark.parametrize("where", ["launch", "recording the failure"])
async def test_a_due_relaunch_is_kept_through_a_database_error(where: str) -> None:
    """Hazard: the relaunch was cleared before it was launched; a database error lost it."""
    rig = Rig()
    await rig.episode()
    (first,) = rig.launcher.launched
    rig.launcher.statuses[first.request_id] = "failed"
    await rig.trigger.tick()
    rig.wait(10)
    if where == "launch":
        rig.launcher.fail_with = db_error()  # could not record the run: none started
    else:
        rig.launcher.fail_with = RuntimeError("KFP is away")
        rig.ledger.down = True  # and the failure cannot be recorded
    with pytest.raises(OperationalError):
        await rig.trigger.tick()
    kept = rig.trigger.relaunch
    assert kept is not None and kept.request is not None and kept.published
    assert len(rig.published) == 2  # the first request and the relaunch, once
    rig.launcher.fail_with, rig.ledger.down = None, False
    await rig.trigger.tick()
    second = rig.launcher.launched[-1]
    assert second.request_id == kept.request.request_id  # the same relaunch, not a new one
    assert len(rig.published) == 2 and rig.trigger.relaunch is None
    assert rig.trigger.in_flight is not None and rig.trigger.in_flight.attempt == 1


async def test_a_relaunch_waits_for_kafka_and_is_published_once() -> None:
    rig = Rig()
    await rig.episode()
    (first,) = rig.launcher.launched
    rig.launcher.statuses[first.request_id] = "failed"
    await rig.trigger.tick()
    rig.wait(10)
    rig.kafka_down = True
    with pytest.raises(ConnectionError):
        await rig.trigger.tick()
    assert rig.trigger.relaunch is not None and len(rig.launcher.launched) == 1
    rig.kafka_down = False
    await rig.trigger.tick()
    assert len(rig.published) == 2 and len(rig.launcher.launched) == 2


async def test_restart_recovery_restores_cooldown_and_follows_the_run_still_going() -> None:
    class Ledger(FakeLedger):
        def latest(self) -> tuple[datetime, str] | None:
            return (NOW, "running")

    policy = policy_from(config(cooldown_seconds=600), Ledger())  # type: ignore[arg-type]
    assert policy.last_fired_at == NOW and policy.in_flight_since == NOW
    rig = Rig(policy)
    rig.wall = NOW + timedelta(seconds=60)
    rig.launcher.statuses["before-restart"] = "running"
    rig.trigger.resume(["older", "before-restart"])
    await rig.episode()
    assert rig.launcher.launched == []  # in flight and cooling down
    rig.launcher.statuses["before-restart"] = "failed"
    await rig.trigger.tick()
    assert rig.trigger.in_flight is None and rig.trigger.relaunch is None  # not ours to relaunch
    assert policy.in_flight_since is None
    rig.wait(600)
    await rig.episode()
    assert len(rig.launcher.launched) == 1


def test_relaunch_waits_double_from_the_backoff() -> None:
    rule = RelaunchRule(attempts=3, backoff_seconds=60.0)
    assert [rule.delay(a) for a in range(3)] == [60.0, 120.0, 240.0]


async def test_a_restart_resumes_a_pending_relaunch_under_the_same_request_id() -> None:
    """The run failed, its relaunch was due in 10 s; the trigger stopped 4 s later."""
    first, uninterrupted = await Rig(attempts=2).first_relaunch()  # what it would launch

    after = Rig(attempts=2)
    after.policy.last_fired_at = after.wall
    after.trigger.resume([], failed=RecordedRun(first, 0, after.wall - timedelta(seconds=4)))
    assert after.policy.in_flight_since is not None  # the episode's run is still in flight
    after.wait(5)
    await after.trigger.tick()
    assert after.launcher.launched == []  # due 6 s after the restart
    after.wait(1)
    await after.trigger.tick()
    (relaunched,) = after.launcher.launched
    assert relaunched.request_id == uninterrupted.request_id == relaunch_id(first.request_id, 1)
    assert relaunched.reason == uninterrupted.reason and after.published == [relaunched]


async def test_a_restart_after_the_last_relaunch_failed_relaunches_nothing() -> None:
    rig = Rig(attempts=1)
    await rig.episode()
    (first,) = rig.launcher.launched
    last = relaunch_request(first, 1, rig.wall)
    restarted = Rig(attempts=1)
    restarted.trigger.resume([], failed=RecordedRun(last, 1, restarted.wall))
    assert restarted.trigger.relaunch is None and restarted.policy.in_flight_since is None


async def test_a_run_found_at_restart_is_relaunched_if_it_fails() -> None:
    rig = Rig(attempts=2)
    await rig.episode()
    (first,) = rig.launcher.launched
    restarted = Rig(attempts=2)
    restarted.launcher.statuses[first.request_id] = "failed"
    restarted.trigger.resume(
        [first.request_id], {first.request_id: RecordedRun(first, 0, None)}.get
    )
    await restarted.trigger.tick()
    relaunch = restarted.trigger.relaunch
    assert relaunch is not None and relaunch.failed == first and relaunch.attempt == 1


async def test_the_relaunch_number_comes_from_the_ledger_not_the_reason() -> None:
    """A relaunch's number is recorded with its run: a restart reads it from there."""
    rig = Rig(attempts=2)
    _, second = await rig.first_relaunch()
    assert rig.launcher.attempts == [0, 1]
    # Its reason says relaunch 1, the ledger 2 (the last one): nothing is relaunched.
    restarted = Rig(attempts=2)
    restarted.trigger.resume([], failed=RecordedRun(second, 2, restarted.wall))
    assert restarted.trigger.relaunch is None
    restarted.trigger.resume([], failed=RecordedRun(second, 1, restarted.wall))
    assert restarted.trigger.relaunch is not None and restarted.trigger.relaunch.attempt == 2


async def test_a_failure_older_than_the_max_age_is_not_relaunched_at_restart() -> None:
    rig = Rig()
    await rig.episode()
    (first,) = rig.launcher.launched
    restarted = Rig(attempts=2, max_age_seconds=3600)
    restarted.policy.last_fired_at = restarted.wall - timedelta(hours=2)
    restarted.trigger.resume([], failed=RecordedRun(first, 0, restarted.wall - timedelta(hours=2)))
    assert restarted.trigger.relaunch is None and restarted.policy.in_flight_since is None
    ((failed_id, attempt, reason),) = restarted.decisions.held
    assert (failed_id, attempt) == (first.request_id, 1)
    assert "failed 7200s before this restart" in reason and "3600s" in reason
    restarted.wait(3600)
    await restarted.trigger.tick()
    assert restarted.launcher.launched == []
    await restarted.episode()  # drift fires anew
    assert len(restarted.launcher.launched) == 1

    recent = Rig(attempts=2, max_age_seconds=3600)
    recent.trigger.resume([], failed=RecordedRun(first, 0, recent.wall - timedelta(minutes=59)))
    assert recent.trigger.relaunch is not None and recent.decisions.held == []


def test_restored_streaks_count_on_where_they_stopped() -> None:
    before = RetrainPolicy(config())
    events = [event("pump-001") for _ in range(2)] + [event("pump-002")]
    decided = [before.observe(e, NOW) for e in events]
    assert [d.streak for d in decided] == [1, 2, 1]
    after = RetrainPolicy(config())
    after.restore_streaks(before.streaks())
    third = event("pump-001")
    fired = after.observe(third, NOW)
    assert fired.fired and fired.sensors == ["pump-001"] and fired.streak == 0
    assert fired.drift_event_ids == [events[0].event_id, events[1].event_id, third.event_id]
    assert after.streak("pump-002") == 1
