"""retrain-trigger: turns drift events into retraining decisions, and records every one.

Each drift event gets one row in trigger_decisions (fired or not, with the reason); a firing
publishes a RetrainRequest and hands it to the pipeline launcher. Beside drift, the
labelled-performance rule (driftline.labels.trigger_rule) decides on the labeler's
LabelledPerformance events under the same cooldown and in-flight run.

The logic is driftline.trigger (``machine``: pending, in flight, relaunch, cooldown; ``store``:
its SQL; ``recovery``: what a restart restores, so it does not fire twice); this is its Kafka
side: decode, dead-letter what does not decode, hand on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from driftline.core import metrics
from driftline.core.records import DriftEvent, FailedCheck, LabelledPerformance, RetrainRequest
from driftline.core.settings import Settings
from driftline.store.raw_store import RawStore
from driftline.streaming.dead_letters import dead_letter
from driftline.streaming.kafka import publish_all
from driftline.streaming.messages import Message
from driftline.streaming.readiness import retry_blocking
from driftline.streaming.runtime import (
    BatchHandler,
    ServiceContext,
    run_consumer_service,
)
from driftline.streaming.service_main import service_main
from driftline.trigger.launcher import PipelineLauncher, make_launcher
from driftline.trigger.ledger import FINISHED, RunLedger
from driftline.trigger.machine import Trigger
from driftline.trigger.recovery import restore

NAME = "retrain-trigger"
log = logging.getLogger(NAME)
R = TypeVar("R", bound=BaseModel)


class TriggerHandler(BatchHandler):
    def __init__(self, ctx: ServiceContext, trigger: Trigger) -> None:
        self.ctx = ctx
        self.trigger = trigger
        trigger.publish = self._publish_request

    async def handle(self, batch: list[Message]) -> None:
        for message in batch:
            if message.topic == self.ctx.topics.labelled_performance:
                labelled = await self._decode(message, LabelledPerformance)
                if labelled is not None:
                    await self.trigger.on_labelled(labelled)
                continue
            event = await self._decode(message, DriftEvent)
            if event is not None:
                await self.trigger.on_drift(event)

    async def tick(self) -> None:
        await self.trigger.tick()

    async def _decode(self, message: Message, record: type[R]) -> R | None:
        try:
            return record.model_validate_json(message.value or b"")
        except ValidationError as exc:
            log.error(
                "dead-lettering malformed %s at %s[%d]@%d",
                record.__name__,
                message.topic,
                message.partition,
                message.offset,
            )
            reason = FailedCheck(check="bad_record", detail=str(exc.errors()[:1])[:300])
            letter = dead_letter(message, NAME, [reason])
            await publish_all(
                self.ctx.producer, [(self.ctx.topics.dead_letter, message.key, letter.to_bytes())]
            )
            return None

    async def _publish_request(self, request: RetrainRequest) -> None:
        await publish_all(
            self.ctx.producer, [(self.ctx.topics.retrain_requests, None, request.to_bytes())]
        )


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
    with store:
        if await retry_blocking(f"{NAME}: creating tables", store.create_tables, stop) is None:
            return
        restored = await retry_blocking(
            f"{NAME}: restoring from the database",
            lambda: restore(settings, ledger, launcher),
            stop,
        )
        if restored is None:
            return
        (trigger,) = restored
        await run_consumer_service(
            NAME,
            settings,
            lambda topics: [topics.drift_events, topics.labelled_performance],
            lambda ctx: TriggerHandler(ctx, trigger),
            stop=stop,
            dependencies={"database": store.ping},
        )


if __name__ == "__main__":
    service_main(NAME, run)
