"""retrain-trigger: turns drift events into retraining decisions, and records every one.

Each drift event gets one row in trigger_decisions (fired or not, with the reason); a firing
publishes a RetrainRequest and hands it to the pipeline launcher. Cooldown and in-flight state
are restored from the run ledger at start, so a restart does not fire twice.

Beside drift, the labelled-performance rule (driftline.labels.trigger_rule) decides on the
labeler's LabelledPerformance events: the production model's F1 against operators' labels below
``trigger_labelled_f1_threshold`` fires too, under the same cooldown and in-flight run.

A run that fails to launch or fails is recorded as failed in retrain_runs, counted, and launched
again (as a new request over the same episode) up to ``trigger_retry_attempts`` times with
doubling waits; pending relaunches are not remembered across a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import select

from driftline import metrics
from driftline.dead_letters import dead_letter
from driftline.kafka import publish_all
from driftline.labels.trigger_rule import (
    LabelledOutcome,
    LabelledTrigger,
    record_decision,
    rule_from,
)
from driftline.launcher import FINISHED, PipelineLauncher, RunLedger, make_launcher
from driftline.messages import Message
from driftline.policy import Decision, PolicyConfig, RetrainPolicy
from driftline.raw_store import RawStore, insert_ignoring_duplicates, naive_utc, trigger_decisions
from driftline.recent_ids import RecentIds
from driftline.records import (
    DriftEvent,
    FailedCheck,
    LabelledPerformance,
    RetrainRequest,
    new_id,
)
from driftline.runtime import BatchHandler, ServiceContext, retry_blocking, run_consumer_service
from driftline.service_main import service_main
from driftline.settings import Settings

NAME = "retrain-trigger"
log = logging.getLogger(NAME)


def policy_from(settings: Settings, ledger: RunLedger) -> RetrainPolicy:
    config = PolicyConfig(
        share_threshold=settings.trigger_share_threshold,
        consecutive_windows=settings.trigger_consecutive_windows,
        min_sensors=settings.trigger_min_sensors,
        cooldown_seconds=settings.trigger_cooldown_seconds,
        max_run_seconds=settings.trigger_max_run_seconds,
    )
    latest = ledger.latest()
    if latest is None:
        return RetrainPolicy(config)
    fired_at, status = latest
    return RetrainPolicy(
        config,
        last_fired_at=fired_at,
        in_flight_since=None if status in FINISHED else fired_at,
    )


DECIDED_MEMORY = 200_000  # drift event ids remembered; a redelivery is never that far back


def decided_event_ids(store: RawStore, limit: int = DECIDED_MEMORY) -> RecentIds:
    """Drift events already decided (before a restart), bounded, oldest forgotten first: a
    redelivery must not count twice."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(trigger_decisions.c.drift_event_id)
            .order_by(trigger_decisions.c.id.desc())
            .limit(limit)
        )
        newest_first = list(rows.scalars())
    seen = RecentIds(limit)
    for event_id in reversed(newest_first):
        seen.add(event_id)
    return seen


@dataclass
class _Pending:
    """A drift event decided but not yet recorded: a retried batch must not observe it twice
    (the policy would count the window twice) nor launch its retraining twice."""

    decided_at: datetime
    decision: Decision
    request: RetrainRequest | None
    published: bool = False
    launched: bool = False


@dataclass(frozen=True)
class _Relaunch:
    request: RetrainRequest  # the run that failed
    attempt: int  # the relaunch's number, 1 for the first
    due: float  # monotonic time


class TriggerHandler(BatchHandler):
    def __init__(
        self,
        ctx: ServiceContext,
        policy: RetrainPolicy,
        launcher: PipelineLauncher,
        store: RawStore,
        ledger: RunLedger,
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.launcher = launcher
        self.store = store
        self.ledger = ledger
        self.in_flight: str | None = None
        self.in_flight_request: tuple[RetrainRequest, int] | None = None
        self.relaunch: _Relaunch | None = None
        self.seen = decided_event_ids(store)
        self._pending: dict[str, _Pending] = {}
        self.labelled = LabelledTrigger(rule_from(ctx.settings), policy)

    async def handle(self, batch: list[Message]) -> None:
        for message in batch:
            if message.topic == self.ctx.topics.labelled_performance:
                await self._labelled(message)
                continue
            try:
                event = DriftEvent.model_validate_json(message.value or b"")
            except ValidationError as exc:
                log.error(
                    "dead-lettering malformed drift event at %s[%d]@%d",
                    message.topic,
                    message.partition,
                    message.offset,
                )
                reason = FailedCheck(check="bad_record", detail=str(exc.errors()[:1])[:300])
                letter = dead_letter(message, NAME, [reason])
                await publish_all(
                    self.ctx.producer,
                    [(self.ctx.topics.dead_letter, message.key, letter.to_bytes())],
                )
                continue
            if event.event_id in self.seen:
                continue  # redelivered: already decided
            await self._decide(event)

    async def _decide(self, event: DriftEvent) -> None:
        p = self._pending.get(event.event_id)
        if p is None:
            now = datetime.now(UTC)
            decision = self.policy.observe(event, now)
            p = _Pending(now, decision, self._request(decision) if decision.fired else None)
            self._pending[event.event_id] = p
        await self._carry_out(p)
        await asyncio.to_thread(self._record, event, p.decision, p.decided_at, p.request)
        metrics.trigger_decisions.labels("fired" if p.decision.fired else "held").inc()
        self.seen.add(event.event_id)
        del self._pending[event.event_id]

    async def _labelled(self, message: Message) -> None:
        """The labelled-performance rule (driftline.labels.trigger_rule), beside drift's."""
        try:
            event = LabelledPerformance.model_validate_json(message.value or b"")
        except ValidationError as exc:
            reason = FailedCheck(check="bad_record", detail=str(exc.errors()[:1])[:300])
            letter = dead_letter(message, NAME, [reason])
            await publish_all(
                self.ctx.producer, [(self.ctx.topics.dead_letter, message.key, letter.to_bytes())]
            )
            return
        if event.event_id in self.seen:
            return
        o = self.labelled.outcome(event, datetime.now(UTC))
        await self._carry_out(o)
        await asyncio.to_thread(record_decision, self.store.engine, event, o)
        metrics.labelled_decisions.labels("fired" if o.decision.fired else "held").inc()
        self.seen.add(event.event_id)
        self.labelled.done(event.event_id)

    async def _carry_out(self, p: _Pending | LabelledOutcome) -> None:
        """Publish and launch a fired decision's request, each once (a retried batch comes back
        with the same pending decision, its steps marked done)."""
        if p.request is not None and not p.published:
            await self._publish_request(p.request)
            p.published = True
        if p.request is not None and not p.launched:
            log.warning("retraining fired: %s", p.decision.reason)
            await self._launch(p.request, attempt=0)
            p.launched = True

    async def _publish_request(self, request: RetrainRequest) -> None:
        await publish_all(
            self.ctx.producer, [(self.ctx.topics.retrain_requests, None, request.to_bytes())]
        )

    async def _launch(self, request: RetrainRequest, attempt: int) -> None:
        """Launch ``request``; a launch that raises is recorded as a failed run."""
        try:
            run_id = await asyncio.to_thread(self.launcher.launch, request)
        except Exception as exc:  # whatever the launcher's client raises: the run failed
            metrics.retrain_launch_failures.labels(self.launcher.name).inc()
            metrics.retrain_runs.labels("failed").inc()
            log.error(
                "launching retraining %s failed (%s: %s)",
                request.request_id,
                type(exc).__name__,
                exc,
            )
            await asyncio.to_thread(self._record_launch_failure, request, exc)
            self._failed(request, attempt)
            return
        self.in_flight = run_id
        self.in_flight_request = (request, attempt)
        metrics.retrains_launched.labels(self.launcher.name).inc()
        metrics.retrains_in_flight.set(1)
        log.info("retraining %s launched (run %s)", request.request_id, run_id)

    def _record_launch_failure(self, request: RetrainRequest, exc: Exception) -> None:
        self.ledger.record(request, self.launcher.name, "failed")
        detail = f"launch failed: {type(exc).__name__}: {exc}"[:2000]
        self.ledger.set_status(request.request_id, "failed", detail)

    def _failed(self, request: RetrainRequest, attempt: int) -> None:
        """A run of ``request`` (relaunch number ``attempt``) failed: relaunch it, or give up."""
        s = self.ctx.settings
        if attempt < s.trigger_retry_attempts:
            delay = s.trigger_retry_backoff_seconds * 2**attempt
            self.relaunch = _Relaunch(request, attempt + 1, time.monotonic() + delay)
            log.warning(
                "retraining %s failed; relaunching in %.0fs (%d of %d)",
                request.request_id,
                delay,
                attempt + 1,
                s.trigger_retry_attempts,
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
        if r is None or self.in_flight is not None or time.monotonic() < r.due:
            return
        request = r.request.model_copy(
            update={
                "request_id": new_id(),
                "requested_at": datetime.now(UTC),
                "reason": f"relaunch {r.attempt} of {r.request.request_id}: {r.request.reason}",
            }
        )
        await self._publish_request(request)  # raises while Kafka is away: tried again later
        self.relaunch = None
        metrics.retrain_retries.labels(self.launcher.name).inc()
        await self._launch(request, r.attempt)

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

    def _record(
        self, event: DriftEvent, decision: Decision, now: datetime, request: RetrainRequest | None
    ) -> None:
        insert_ignoring_duplicates(
            self.store.engine,
            trigger_decisions,
            [
                {
                    "decided_at": naive_utc(now),
                    "drift_event_id": event.event_id,
                    "sensor_id": event.sensor_id,
                    "drift_share": event.drift_share,
                    "fired": decision.fired,
                    "reason": decision.reason,
                    "request_id": request.request_id if request else None,
                }
            ],
        )

    async def tick(self) -> None:
        if self.in_flight is not None:
            status = await asyncio.to_thread(self.launcher.status, self.in_flight)
            if status in FINISHED:
                log.info("retraining run %s finished: %s", self.in_flight, status)
                metrics.retrain_runs.labels(status).inc()
                launched, self.in_flight, self.in_flight_request = (
                    self.in_flight_request,
                    None,
                    None,
                )
                if status == "failed" and launched is not None:
                    self._failed(*launched)
                else:
                    self.policy.run_finished()
                    metrics.retrains_in_flight.set(0)
        await self._relaunch_if_due()


async def run(
    settings: Settings, stop: asyncio.Event | None = None, launcher: PipelineLauncher | None = None
) -> None:
    stop = stop or asyncio.Event()
    store = RawStore.from_url(settings.resolved_database_url)
    ledger = RunLedger(store.engine)
    launcher = launcher or make_launcher(settings, ledger)
    metrics.start_at_zero(metrics.retrain_runs, *sorted(FINISHED))
    metrics.start_at_zero(metrics.trigger_decisions, "fired", "held")
    metrics.start_at_zero(metrics.labelled_decisions, "fired", "held")
    metrics.start_at_zero(metrics.retrain_launch_failures, launcher.name)
    metrics.start_at_zero(metrics.retrain_retries, launcher.name)
    try:
        if await retry_blocking(f"{NAME}: creating tables", store.create_tables, stop) is None:
            return
        restored = await retry_blocking(
            f"{NAME}: reading the run ledger", lambda: policy_from(settings, ledger), stop
        )
        if restored is None:
            return
        (policy,) = restored
        await run_consumer_service(
            NAME,
            settings,
            lambda topics: [topics.drift_events, topics.labelled_performance],
            lambda ctx: TriggerHandler(ctx, policy, launcher, store, ledger),
            stop=stop,
            dependencies={"database": store.ping},
        )
    finally:
        store.engine.dispose()


if __name__ == "__main__":
    service_main(NAME, run)
