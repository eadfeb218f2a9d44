"""The retrain-trigger's state machine: decide each event once, publish and launch a fired
decision's request once, follow the run in flight, relaunch a failed one with a backoff.

It knows nothing of Kafka: the service hands it decoded events and a ``publish`` function, and
calls ``tick`` now and then. Its states:

- pending: an event decided whose steps (publish, launch, record) are not all done; a retried
  batch brings the event back and finds its decision, the steps done marked so;
- in flight: a launched run, asked for its status at each tick;
- relaunch: a failed run waiting for its next attempt (``retry_attempts`` at most, waits doubling
  from ``retry_backoff_seconds``; its request id derived from the failed one's,
  driftline.trigger.relaunch, so a restart resumes it under the same id, if the run failed
  less than ``retry_max_age_seconds`` before: an older failure is not relaunched, and a
  decision says so). It is cleared only
  once the relaunch is launched and recorded (a database error meanwhile keeps it, to try again
  at the next tick), and its request is made once, so a retry publishes and launches the same
  request, not a second one;
- cooldown: the policy's (``RetrainPolicy.blockers``).

A launch that raises a database error is not a failed run: nothing was started (launchers
record a run before starting it), and the same request is launched again later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from driftline.core import metrics
from driftline.core.recent_ids import RecentIds
from driftline.core.records import DriftEvent, LabelledPerformance, RetrainRequest
from driftline.labels.trigger_rule import LabelledOutcome, LabelledTrigger
from driftline.trigger.launcher import PipelineLauncher
from driftline.trigger.ledger import FINISHED, RecordedRun, RunStatus
from driftline.trigger.policy import Decision, RetrainPolicy
from driftline.trigger.relaunch import Relaunch, RelaunchRule, relaunch_request

log = logging.getLogger("retrain-trigger")

Publish = Callable[[RetrainRequest], Awaitable[None]]


class Ledger(Protocol):
    """What the machine writes to the run ledger (driftline.launcher.RunLedger)."""

    def record(
        self, request: RetrainRequest, launcher: str, status: RunStatus, attempt: int = 0
    ) -> None: ...

    def set_status(self, request_id: str, status: RunStatus, detail: str | None = None) -> None: ...


class Decisions(Protocol):
    """Where decisions are recorded (driftline.trigger.store.DecisionStore)."""

    def record_drift(self, event: DriftEvent, decided: Pending) -> None: ...

    def record_labelled(self, event: LabelledPerformance, outcome: LabelledOutcome) -> None: ...

    def record_held_relaunch(
        self, failed: RetrainRequest, attempt: int, reason: str, decided_at: datetime
    ) -> None:
        """Relaunch number ``attempt`` of ``failed`` was not made, for ``reason``."""


@dataclass
class Pending:
    """A drift event decided but not yet recorded: a retried batch must not observe it twice
    (the policy would count the window twice) nor launch its retraining twice."""

    decided_at: datetime
    decision: Decision
    request: RetrainRequest | None
    published: bool = False
    launched: bool = False


@dataclass
class InFlight:
    run_id: str
    request: RetrainRequest | None  # None: a run found at restart (not relaunched if it fails)
    attempt: int = 0  # its relaunch number, 0 for the first launch


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Trigger:
    policy: RetrainPolicy
    labelled: LabelledTrigger
    launcher: PipelineLauncher
    ledger: Ledger
    decisions: Decisions
    publish: Publish
    rule: RelaunchRule
    seen: RecentIds
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = _utc_now
    pending: dict[str, Pending] = field(default_factory=dict, init=False)
    in_flight: InFlight | None = field(default=None, init=False)
    relaunch: Relaunch | None = field(default=None, init=False)

    def resume(
        self,
        run_ids: list[str],
        runs: Callable[[str], RecordedRun | None] = lambda run_id: None,
        failed: RecordedRun | None = None,
    ) -> None:
        """Restart recovery: follow the newest run the launcher says is still going (its
        outcome then ends the policy's in-flight state, not the deadline; a run ``runs``
        finds in the ledger is relaunched if it fails), or resume the relaunch of the newest
        run if it ``failed`` before a restart, and recently enough."""
        if run_ids:
            run = runs(run_ids[-1])
            if run is None:
                self.in_flight = InFlight(run_ids[-1], None)
            else:
                self.in_flight = InFlight(run_ids[-1], run.request, run.attempt)
            metrics.retrains_in_flight.set(1)
            return
        if failed is not None and failed.attempt < self.rule.attempts:
            self._resume_relaunch(failed.request, failed.attempt, failed.finished_at)

    def _resume_relaunch(
        self, request: RetrainRequest, attempt: int, finished_at: datetime | None
    ) -> None:
        now = self.now()
        ago = max(0.0, (now - (finished_at or now)).total_seconds())
        if ago > self.rule.max_age_seconds:
            reason = (
                f"not relaunching failed retraining {request.request_id} (relaunch "
                f"{attempt + 1} of {self.rule.attempts}): it failed {ago:.0f}s before this "
                f"restart, more than the {self.rule.max_age_seconds:.0f}s "
                "DRIFTLINE_TRIGGER_RETRY_MAX_AGE_SECONDS allows; drift fires anew"
            )
            log.warning("%s", reason)
            self.decisions.record_held_relaunch(request, attempt + 1, reason, now)
            metrics.trigger_decisions.labels("held").inc()
            return
        wait = max(0.0, self.rule.delay(attempt) - ago)
        self.relaunch = Relaunch(request, attempt + 1, self.clock() + wait)
        self.policy.in_flight_since = self.policy.last_fired_at
        metrics.retrains_in_flight.set(1)
        log.warning(
            "resuming the relaunch of failed retraining %s in %.0fs (%d of %d)",
            request.request_id,
            wait,
            attempt + 1,
            self.rule.attempts,
        )

    async def on_drift(self, event: DriftEvent) -> None:
        if event.event_id in self.seen:
            return  # redelivered: already decided
        p = self.pending.get(event.event_id)
        if p is None:
            now = self.now()
            decision = self.policy.observe(event, now)
            # A firing says streak 0 also for its event's sensor when that sensor's streak was
            # too short to be consumed: record the streak the policy keeps (a restart restores it).
            decision = replace(decision, streak=self.policy.streak(event.sensor_id))
            p = Pending(now, decision, self._request(decision) if decision.fired else None)
            self.pending[event.event_id] = p
        await self._carry_out(p)
        await asyncio.to_thread(self.decisions.record_drift, event, p)
        metrics.trigger_decisions.labels("fired" if p.decision.fired else "held").inc()
        self.seen.add(event.event_id)
        del self.pending[event.event_id]

    async def on_labelled(self, event: LabelledPerformance) -> None:
        """The labelled-performance rule (driftline.labels.trigger_rule), beside drift's."""
        if event.event_id in self.seen:
            return
        o = self.labelled.outcome(event, self.now())
        await self._carry_out(o)
        await asyncio.to_thread(self.decisions.record_labelled, event, o)
        metrics.labelled_decisions.labels("fired" if o.decision.fired else "held").inc()
        self.seen.add(event.event_id)
        self.labelled.done(event.event_id)

    async def tick(self) -> None:
        f = self.in_flight
        if f is not None:
            status = await asyncio.to_thread(self.launcher.status, f.run_id)
            if status in FINISHED:
                log.info("retraining run %s finished: %s", f.run_id, status)
                metrics.retrain_runs.labels(status).inc()
                self.in_flight = None
                if status == "failed" and f.request is not None:
                    self._failed(f.request, f.attempt)
                else:
                    self.policy.run_finished()
                    metrics.retrains_in_flight.set(0)
        await self._relaunch_if_due()

    async def _carry_out(self, p: Pending | LabelledOutcome) -> None:
        """Publish and launch a fired decision's request, each once (a retried batch comes back
        with the same pending decision, its steps marked done)."""
        if p.request is not None and not p.published:
            await self.publish(p.request)
            p.published = True
        if p.request is not None and not p.launched:
            log.warning("retraining fired: %s", p.decision.reason)
            await self._launch(p.request, attempt=0)
            p.launched = True

    async def _launch(self, request: RetrainRequest, attempt: int) -> None:
        """Launch ``request``; a launch that fails is recorded as a failed run. Returns once
        the launch or its failure is recorded; raises if the database would not record it."""
        try:
            run_id = await asyncio.to_thread(self.launcher.launch, request, attempt)
        except SQLAlchemyError:
            raise  # not recorded, so not started: the same request is launched again later
        except Exception as exc:  # whatever the launcher's client raises: the run failed
            log.error(
                "launching retraining %s failed (%s: %s)",
                request.request_id,
                type(exc).__name__,
                exc,
            )
            await asyncio.to_thread(self._record_launch_failure, request, attempt, exc)
            metrics.retrain_launch_failures.labels(self.launcher.name).inc()
            metrics.retrain_runs.labels("failed").inc()
            self._failed(request, attempt)
            return
        self.in_flight = InFlight(run_id, request, attempt)
        metrics.retrains_launched.labels(self.launcher.name).inc()
        metrics.retrains_in_flight.set(1)
        log.info("retraining %s launched (run %s)", request.request_id, run_id)

    def _record_launch_failure(self, request: RetrainRequest, attempt: int, exc: Exception) -> None:
        self.ledger.record(request, self.launcher.name, "failed", attempt)
        detail = f"launch failed: {type(exc).__name__}: {exc}"[:2000]
        self.ledger.set_status(request.request_id, "failed", detail)

    def _failed(self, request: RetrainRequest, attempt: int) -> None:
        """A run of ``request`` (relaunch number ``attempt``) failed: relaunch it, or give up."""
        if attempt < self.rule.attempts:
            delay = self.rule.delay(attempt)
            self.relaunch = Relaunch(request, attempt + 1, self.clock() + delay)
            log.warning(
                "retraining %s failed; relaunching in %.0fs (%d of %d)",
                request.request_id,
                delay,
                attempt + 1,
                self.rule.attempts,
            )
            return  # still in flight for the policy: no new firing for this episode meanwhile
        log.error(
            "retraining %s failed after %d relaunches; waiting for drift to fire again",
            request.request_id,
            attempt,
        )
        self.policy.run_finished()
        metrics.retrains_in_flight.set(0)

    async def _relaunch_if_due(self) -> None:
        r = self.relaunch
        if r is None or self.in_flight is not None or self.clock() < r.due:
            return
        if r.request is None:
            r.request = relaunch_request(r.failed, r.attempt, self.now())
        if not r.published:
            await self.publish(r.request)  # raises while Kafka is away: tried again later
            r.published = True
            metrics.retrain_retries.labels(self.launcher.name).inc()
        await self._launch(r.request, r.attempt)  # raises if not recorded: ``r`` stays
        if self.relaunch is r:  # (a failed launch may have scheduled the next one)
            self.relaunch = None

    def _request(self, decision: Decision) -> RetrainRequest:
        if decision.data_start is None or decision.data_end is None:
            raise ValueError(f"a fired decision without its episode's time range: {decision}")
        return RetrainRequest(
            reason=decision.reason,
            sensors=decision.sensors,
            drift_event_ids=decision.drift_event_ids,
            data_start=decision.data_start,
            data_end=decision.data_end,
        )
