"""The loop every consuming service shares: poll a micro-batch, handle it, commit, repeat.

A handler must be idempotent: when it raises, ``driftline.error_policy`` decides. A dependency
that is away (the database is down, the broker refuses writes) means the same batch is
retried with backoff and its offsets stay uncommitted, so the service applies back-pressure
instead of losing or skipping readings; any other failure is retried a bounded number of
times, then the record that causes it is dead-lettered. Kafka going away at start or
mid-stream is waited out the same way; meanwhile the service reports not ready
(``driftline.health``), from a watcher that checks Kafka and the service's dependencies
(``driftline.streaming.readiness``). Committing and counting a handled batch is
``driftline.streaming.commits``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from driftline.core import metrics
from driftline.core.backoff import pause
from driftline.core.health import KAFKA, ServiceHealth, registry
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.streaming.batch_order import start_after
from driftline.streaming.commits import commit_until_done, count_and_measure_lag, kafka_failed
from driftline.streaming.error_policy import ErrorPolicy
from driftline.streaming.kafka import (
    ensure_topics,
    make_consumer,
    make_producer,
    poll_batch,
    publish_all,
)
from driftline.streaming.messages import Message
from driftline.streaming.readiness import Ping, check_health, retry_kafka, watch_health
from driftline.streaming.stuck_consumer import StuckWatch, consumer_stuck

log = logging.getLogger(__name__)


@dataclass
class ServiceContext:
    """What a running service's handler may use."""

    name: str
    settings: Settings
    topics: Topics
    producer: AIOKafkaProducer
    consumer: AIOKafkaConsumer
    health: ServiceHealth | None = None


class BatchHandler(Protocol):
    """What a consuming service implements. Only ``handle`` is required."""

    # How many batches may be handled at once: above 1, the next batch is polled and its
    # ``handle`` started while the previous one's runs (a handler whose batches are
    # independent, e.g. ingest's rows). Offsets are committed in order all the same; a
    # handler that publishes keeps its records in order with ``earlier_batches_done``.
    batches_in_flight: int = 1

    async def handle(self, batch: list[Message]) -> None:
        """Process a batch idempotently; raise to have it retried."""

    def commit_offsets(self, batch: list[Message]) -> dict[TopicPartition, int] | None:
        """Offsets to commit after ``batch``; None means just past the batch.

        A stateful handler returns less: the oldest offsets its open state still needs.
        """
        return None

    async def tick(self) -> None:
        """Runs between polls, also when nothing arrives (e.g. to close idle windows)."""


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_consumer_service(
    name: str,
    settings: Settings,
    subscribe: Callable[[Topics], Sequence[str]],
    make_handler: Callable[[ServiceContext], BatchHandler],
    *,
    stop: asyncio.Event | None = None,
    dependencies: Mapping[str, Ping] | None = None,
) -> None:
    """Run service ``name`` until ``stop`` is set.

    ``dependencies`` are checks by name (e.g. ``{"database": store.ping}``) that raise when
    the dependency does not answer: the service is ready only while they pass.
    """
    stop = stop or asyncio.Event()
    dependencies = dict(dependencies or {})
    interval = settings.health_check_seconds
    health = registry.register(ServiceHealth(name, tuple(dependencies), stale_after=3 * interval))
    health.down(KAFKA, "connecting")
    topics = Topics(settings.topic_prefix)
    try:
        if not await retry_kafka(name, lambda: ensure_topics(settings, topics.all()), stop, health):
            return
        await _run_clients(
            name, settings, topics, subscribe, make_handler, stop, health, dependencies
        )
    finally:
        registry.unregister(health)


async def _run_clients(
    name: str,
    settings: Settings,
    topics: Topics,
    subscribe: Callable[[Topics], Sequence[str]],
    make_handler: Callable[[ServiceContext], BatchHandler],
    stop: asyncio.Event,
    health: ServiceHealth,
    dependencies: Mapping[str, Ping],
) -> None:
    producer = make_producer(settings)
    try:
        if not await retry_kafka(f"{name} producer", producer.start, stop, health):
            return

        def new_consumer() -> AIOKafkaConsumer:
            return make_consumer(settings, settings.group_id(name), subscribe(topics))

        ctx = ServiceContext(name, settings, topics, producer, new_consumer(), health)
        handler = make_handler(ctx)
        policy = _policy(ctx, handler, dependencies, stop)
        # A consumer found stuck is replaced by a new one; the handler and its state stay.
        while await _consume(ctx, handler, policy, health, dependencies, stop):
            metrics.consumer_restarts.labels(name).inc()
            ctx.consumer = new_consumer()
    finally:
        await producer.stop()
        log.info("%s stopped", name)


async def _consume(
    ctx: ServiceContext,
    handler: BatchHandler,
    policy: ErrorPolicy,
    health: ServiceHealth,
    dependencies: Mapping[str, Ping],
    stop: asyncio.Event,
) -> bool:
    """Run the loop on ``ctx.consumer`` until ``stop`` (False) or until it is stuck (True)."""
    watcher: asyncio.Task[None] | None = None
    try:
        if not await retry_kafka(f"{ctx.name} consumer", ctx.consumer.start, stop, health):
            return False
        log.info(
            "%s running, consuming %s", ctx.name, ", ".join(sorted(ctx.consumer.subscription()))
        )
        watcher = asyncio.create_task(
            watch_health(
                ctx.consumer, health, dependencies, ctx.settings.health_check_seconds, stop
            ),
            name=f"{ctx.name}-health",
        )
        return await _loop(ctx, handler, policy, stop)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await ctx.consumer.stop()


def _policy(
    ctx: ServiceContext,
    handler: BatchHandler,
    dependencies: Mapping[str, Ping],
    stop: asyncio.Event,
) -> ErrorPolicy:
    timeout = max(1.0, ctx.settings.health_check_seconds)

    async def dependencies_up() -> bool:
        if ctx.health is None:
            return True
        await check_health(ctx.consumer, ctx.health, dependencies, timeout)
        return ctx.health.dependencies_ready()

    async def publish(items: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        await publish_all(ctx.producer, items)

    return ErrorPolicy(
        service=ctx.name,
        handle=handler.handle,
        publish=publish,
        dead_letter_topic=ctx.topics.dead_letter,
        dependencies_up=dependencies_up,
        stop=stop,
        health=ctx.health,
        attempts=ctx.settings.record_retry_attempts,
        stall_after=ctx.settings.stall_retries,
    )


async def _loop(
    ctx: ServiceContext, handler: BatchHandler, policy: ErrorPolicy, stop: asyncio.Event
) -> bool:
    """Poll, handle, commit until ``stop`` or a failed commit (False), or until the consumer
    is stuck (True: nothing in flight, the caller replaces it)."""
    s = ctx.settings
    watch = StuckWatch(s.consumer_stuck_seconds)
    depth = max(1, getattr(handler, "batches_in_flight", 1))
    # Batches being handled, oldest first: a batch is committed only once it and every batch
    # before it are handled.
    in_flight: deque[_InFlight] = deque()
    try:
        while not stop.is_set():
            await _tick(ctx, handler, stop)
            try:
                batch = await poll_batch(ctx.consumer, s.batch_max_records, s.batch_max_wait_ms)
            except KafkaError as exc:  # e.g. the broker went away mid-fetch: poll again later
                kafka_failed(ctx, "poll", exc)
                await pause(stop, 1.0)
                continue
            if batch:
                watch.moved()
                previous = in_flight[-1].task if in_flight else None
                task = start_after(previous, policy.run(batch))
                in_flight.append(_InFlight(batch, task))
            # Wait for the oldest when the pipeline is full, or when nothing new came (an
            # idle stream must not leave a handled batch uncommitted).
            while in_flight and (in_flight[0].task.done() or len(in_flight) >= depth or not batch):
                oldest = in_flight.popleft()
                if not await oldest.task:
                    return False  # stopping with the batch unhandled: it stays uncommitted
                if not await _commit(ctx, handler, oldest, stop):
                    return False
            if not batch and watch.due() and await consumer_stuck(ctx, watch):
                return True
        return False
    finally:
        await _abandon(in_flight, stop)


@dataclass
class _InFlight:
    batch: list[Message]
    task: asyncio.Task[bool]
    started: float = field(default_factory=time.perf_counter)


async def _commit(
    ctx: ServiceContext, handler: BatchHandler, done: _InFlight, stop: asyncio.Event
) -> bool:
    offsets = handler.commit_offsets(done.batch)
    if not await commit_until_done(ctx, done.batch, offsets, stop):
        return False
    metrics.batch_seconds.labels(ctx.name).observe(time.perf_counter() - done.started)
    metrics.batch_size.labels(ctx.name).observe(len(done.batch))
    count_and_measure_lag(ctx, done.batch)
    return True


async def _abandon(in_flight: deque[_InFlight], stop: asyncio.Event) -> None:
    """Batches still in flight when the loop ends stay uncommitted (they are delivered
    again). Stopping, they are let finish their attempt (a handler may be mid-transaction
    in a thread); on any other exit (cancelled), cancelled."""
    tasks = [f.task for f in in_flight]
    if not stop.is_set():
        for task in tasks:
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _tick(ctx: ServiceContext, handler: BatchHandler, stop: asyncio.Event) -> None:
    """A failing tick (e.g. publishing while the broker is away) is logged and tried again at
    the next turn of the loop; it must not end the service."""
    try:
        await handler.tick()
    except Exception as exc:
        metrics.service_errors.labels(ctx.name, type(exc).__name__).inc()
        log.error("%s: tick failed (%s: %s); trying again", ctx.name, type(exc).__name__, exc)
        await pause(stop, 1.0)
