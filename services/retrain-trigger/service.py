"""retrain-trigger: turns drift events into retraining decisions, and records every one.

Each drift event gets one row in trigger_decisions (fired or not, with the reason); a firing
publishes a RetrainRequest and hands it to the pipeline launcher. Cooldown and in-flight state
are restored from the run ledger at start, so a restart does not fire twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from pydantic import ValidationError
from sqlalchemy import select

from driftline import metrics
from driftline.dead_letters import dead_letter
from driftline.kafka import publish_all
from driftline.launcher import FINISHED, PipelineLauncher, RunLedger, make_launcher
from driftline.messages import Message
from driftline.policy import Decision, PolicyConfig, RetrainPolicy
from driftline.raw_store import RawStore, insert_ignoring_duplicates, naive_utc, trigger_decisions
from driftline.records import DriftEvent, FailedCheck, RetrainRequest
from driftline.runtime import BatchHandler, ServiceContext, run_consumer_service
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


def decided_event_ids(store: RawStore, limit: int = 200_000) -> set[str]:
    """Drift events already decided (before a restart): a redelivery must not count twice."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(trigger_decisions.c.drift_event_id)
            .order_by(trigger_decisions.c.id.desc())
            .limit(limit)
        )
        return set(rows.scalars())


class TriggerHandler(BatchHandler):
    def __init__(
        self,
        ctx: ServiceContext,
        policy: RetrainPolicy,
        launcher: PipelineLauncher,
        store: RawStore,
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.launcher = launcher
        self.store = store
        self.in_flight: str | None = None
        self.seen = decided_event_ids(store)

    async def handle(self, batch: list[Message]) -> None:
        for message in batch:
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
        now = datetime.now(UTC)
        decision = self.policy.observe(event, now)
        request = self._request(decision) if decision.fired else None
        if request is not None:
            await publish_all(
                self.ctx.producer, [(self.ctx.topics.retrain_requests, None, request.to_bytes())]
            )
            run_id = await asyncio.to_thread(self.launcher.launch, request)
            self.in_flight = run_id
            metrics.retrains_launched.labels(self.launcher.name).inc()
            metrics.retrains_in_flight.set(1)
            log.warning("retraining fired: %s (run %s)", decision.reason, run_id)
        await asyncio.to_thread(self._record, event, decision, now, request)
        metrics.trigger_decisions.labels("fired" if decision.fired else "held").inc()
        self.seen.add(event.event_id)

    def _request(self, decision: Decision) -> RetrainRequest:
        assert decision.data_start and decision.data_end
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
        if self.in_flight is None:
            return
        status = await asyncio.to_thread(self.launcher.status, self.in_flight)
        if status in FINISHED:
            log.info("retraining run %s finished: %s", self.in_flight, status)
            metrics.retrain_runs.labels(status).inc()
            self.in_flight = None
            self.policy.run_finished()
            metrics.retrains_in_flight.set(0)


async def run(
    settings: Settings, stop: asyncio.Event | None = None, launcher: PipelineLauncher | None = None
) -> None:
    store = RawStore.from_url(settings.resolved_database_url)
    await asyncio.to_thread(store.create_tables)
    ledger = RunLedger(store.engine)
    launcher = launcher or make_launcher(settings, ledger)
    policy = await asyncio.to_thread(policy_from, settings, ledger)
    metrics.start_at_zero(metrics.retrain_runs, *sorted(FINISHED))
    metrics.start_at_zero(metrics.trigger_decisions, "fired", "held")
    try:
        await run_consumer_service(
            NAME,
            settings,
            lambda topics: [topics.drift_events],
            lambda ctx: TriggerHandler(ctx, policy, launcher, store),
            stop=stop,
        )
    finally:
        store.engine.dispose()


if __name__ == "__main__":
    service_main(NAME, run)
