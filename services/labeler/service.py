"""labeler: operators' labels in the loop.

Consumes predictions and retrain requests; stores the predictions (to score the model against
labels later) and turns anomaly episodes, drift episodes and uncertain predictions into task
candidates. With ``labels_score_streamed`` it also consumes the valid readings and scores each
with the champion it loads itself, so a labelled reading that was never served is scored too
(``driftline.labels.streamed``). Every ``labels_sync_seconds`` a pass sends pending tasks to
Label Studio, pulls annotations, publishes new labels on the labels topic and updates the
labelled scores. When ``labels_webhook_port`` is set, annotations also arrive at once through
Label Studio's webhook.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import TopicPartition

from driftline.core import metrics
from driftline.core.settings import Settings
from driftline.labels.client import LabelStudioClient
from driftline.labels.intake import LabelIntake, candidate_config, subscribed
from driftline.labels.store import LabelStore, create_label_tables
from driftline.labels.sync import LabelSync
from driftline.labels.sync_pass import publish_only, run_pass
from driftline.labels.webhook import make_app, serve
from driftline.store.raw_store import RawStore
from driftline.streaming.dead_letters import dead_letter
from driftline.streaming.kafka import publish_all
from driftline.streaming.messages import Message
from driftline.streaming.readiness import retry_blocking
from driftline.streaming.runtime import BatchHandler, ServiceContext, run_consumer_service
from driftline.streaming.service_main import service_main

NAME = "labeler"
log = logging.getLogger(NAME)


class LabelerHandler(BatchHandler):
    def __init__(
        self, ctx: ServiceContext, intake: LabelIntake, sync: LabelSync, arrived: asyncio.Event
    ) -> None:
        self.ctx = ctx
        self.intake = intake
        self.sync = sync
        self.arrived = arrived  # set by the webhook when it stored labels
        self._next_pass = 0.0

    async def handle(self, batch: list[Message]) -> None:
        rejected = await asyncio.to_thread(self.intake.take, batch)
        for r in rejected:
            log.error(
                "dead-lettering malformed record at %s[%d]@%d",
                r.message.topic,
                r.message.partition,
                r.message.offset,
            )
        letters = [
            (self.ctx.topics.dead_letter, r.message.key, dead_letter(r.message, NAME, [r.reason]))
            for r in rejected
        ]
        await publish_all(self.ctx.producer, [(t, k, d.to_bytes()) for t, k, d in letters])

    def commit_offsets(self, batch: list[Message]) -> dict[TopicPartition, int]:
        return self.intake.commit_offsets(batch)

    async def tick(self) -> None:
        s = self.ctx.settings
        if time.monotonic() >= self._next_pass:
            self._next_pass = time.monotonic() + s.labels_sync_seconds
            self.arrived.clear()
            await run_pass(
                self.sync, self.ctx.producer, self.ctx.topics, s.labels_performance_window
            )
        elif self.arrived.is_set():
            self.arrived.clear()
            await publish_only(self.sync, self.ctx.producer, self.ctx.topics)


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    if not settings.label_studio_url or settings.label_studio_token is None:
        log.error("labeler needs DRIFTLINE_LABEL_STUDIO_URL and DRIFTLINE_LABEL_STUDIO_TOKEN")
        raise SystemExit(2)
    raw = RawStore.from_url(settings.resolved_database_url)
    store = LabelStore(raw.engine)
    token = settings.label_studio_token.get_secret_value()
    client = LabelStudioClient(settings.label_studio_url, token)
    sync = LabelSync.from_settings(client, store, settings)
    metrics.start_at_zero(metrics.label_sync_failures, "label_studio", "database", "kafka")
    arrived = asyncio.Event()
    runner = None
    watcher = None
    streamed = None

    def create_tables() -> None:
        raw.create_tables()
        create_label_tables(raw.engine)

    async def stored() -> None:
        arrived.set()

    try:
        if await retry_blocking(f"{NAME}: creating tables", create_tables, stop) is None:
            return
        if settings.labels_score_streamed:
            from driftline.labels.streamed import watched_scorer

            try:
                streamed, watcher = await asyncio.to_thread(watched_scorer, settings)
            except ImportError as exc:  # an image without the model's packages
                log.error("streamed readings not scored: %s (install mlflow, bentoml)", exc)
        if settings.labels_webhook_port is not None:
            app = make_app(sync, stored)
            runner = await serve(app, settings.metrics_host, settings.labels_webhook_port)
        config = candidate_config(settings)
        await run_consumer_service(
            NAME,
            settings,
            lambda topics: subscribed(topics, streamed is not None),
            lambda ctx: LabelerHandler(
                ctx, LabelIntake(store, ctx.topics, config, sync.scores, streamed), sync, arrived
            ),
            stop=stop,
            dependencies={"database": raw.ping},
        )
    finally:
        if runner is not None:
            await runner.cleanup()
        if watcher is not None:
            await asyncio.to_thread(watcher.stop)
        client.close()
        raw.engine.dispose()


if __name__ == "__main__":
    service_main(NAME, run)
