"""The loop every consuming service shares: poll a micro-batch, handle it, commit, repeat.

A handler must be idempotent: when it raises, ``driftline.error_policy`` decides. A dependency
that is away (the database is down, the broker refuses writes) means the same batch is
retried with backoff and its offsets stay uncommitted, so the service applies back-pressure
instead of losing or skipping readings; any other failure is retried a bounded number of
times, then the record that causes it is dead-lettered. Kafka going away at start or
mid-stream is waited out the same way; meanwhile the service reports not ready
(``driftline.health``), from a watcher that checks Kafka and the service's dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy.exc import SQLAlchemyError

from driftline.core import metrics
from driftline.core.backoff import pause
from driftline.core.errors import BrokerError
from driftline.core.health import KAFKA, ServiceHealth, registry
from driftline.core.retry import retry
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.streaming.error_policy import ErrorPolicy
from driftline.streaming.kafka import (
    commit,
    ensure_topics,
    make_consumer,
    make_producer,
    poll_batch,
    publish_all,
)
from driftline.streaming.messages import Message

T = TypeVar("T")
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


async def _retry(
    what: str,
    action: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    health: ServiceHealth | None = None,
) -> bool:
    """Run ``action`` until it succeeds (True) or ``stop`` is set (False)."""

    def failed(exc: BaseException, delay: float) -> None:
        if health is not None:
            health.failed(KAFKA, f"{what}: {exc}")
        log.warning("%s: Kafka not reachable (%s); retrying in %.1fs", what, exc, delay)

    retry_on = (KafkaError, BrokerError, OSError)
    return await retry(action, retry_on=retry_on, on_failure=failed, stop=stop) is not None


async def retry_blocking(
    what: str, action: Callable[[], T], stop: asyncio.Event
) -> tuple[T] | None:
    """Run blocking ``action`` in a thread until it succeeds (its result, boxed) or ``stop`` is
    set (None): e.g. creating tables while the database is not up yet, which must not crash
    the service."""

    def failed(exc: BaseException, delay: float) -> None:
        log.warning("%s failed (%s: %s); retrying in %.1fs", what, type(exc).__name__, exc, delay)

    return await retry(
        lambda: asyncio.to_thread(action),
        retry_on=(SQLAlchemyError, OSError),
        on_failure=failed,
        stop=stop,
    )


async def wait_for_kafka(name: str, settings: Settings, stop: asyncio.Event) -> bool:
    """Until Kafka answers and the topics exist (True), or ``stop`` is set (False): for a
    service that reads Kafka before its consumer loop starts."""
    topics = Topics(settings.topic_prefix)
    return await _retry(name, lambda: ensure_topics(settings, topics.all()), stop)


Ping = Callable[[], object]


async def check_health(
    consumer: AIOKafkaConsumer,
    health: ServiceHealth,
    dependencies: Mapping[str, Ping],
    timeout: float,
) -> None:
    """Check Kafka (a metadata request, and partitions assigned) and each dependency once."""
    try:
        await asyncio.wait_for(consumer.topics(), timeout)
    except (KafkaError, OSError, TimeoutError) as exc:
        health.failed(KAFKA, f"metadata request failed: {exc or type(exc).__name__}")
    else:
        if consumer.assignment():
            health.ok(KAFKA)
        else:
            health.down(KAFKA, "connected, no partitions assigned (yet)")
    for name, ping in dependencies.items():
        try:
            await asyncio.wait_for(asyncio.to_thread(ping), timeout)
        except Exception as exc:  # whatever the driver raises, the dependency did not answer
            health.failed(name, f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            health.ok(name)


async def _watch_health(
    consumer: AIOKafkaConsumer,
    health: ServiceHealth,
    dependencies: Mapping[str, Ping],
    interval: float,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        await check_health(consumer, health, dependencies, timeout=max(1.0, interval))
        await pause(stop, interval)


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
        if not await _retry(name, lambda: ensure_topics(settings, topics.all()), stop, health):
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
    consumer = make_consumer(settings, settings.group_id(name), subscribe(topics))
    producer = make_producer(settings)
    watcher: asyncio.Task[None] | None = None
    try:
        if not (
            await _retry(f"{name} producer", producer.start, stop, health)
            and await _retry(f"{name} consumer", consumer.start, stop, health)
        ):
            return
        ctx = ServiceContext(name, settings, topics, producer, consumer, health)
        handler = make_handler(ctx)
        watcher = asyncio.create_task(
            _watch_health(consumer, health, dependencies, settings.health_check_seconds, stop),
            name=f"{name}-health",
        )
        log.info("%s running, consuming %s", name, ", ".join(subscribe(topics)))
        await _loop(ctx, handler, _policy(ctx, handler, dependencies, stop), stop)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await consumer.stop()
        await producer.stop()
        log.info("%s stopped", name)


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
) -> None:
    s = ctx.settings
    while not stop.is_set():
        await _tick(ctx, handler, stop)
        try:
            batch = await poll_batch(ctx.consumer, s.batch_max_records, s.batch_max_wait_ms)
        except KafkaError as exc:  # e.g. the broker went away mid-fetch: poll again later
            _kafka_failed(ctx, "poll", exc)
            await pause(stop, 1.0)
            continue
        if not batch:
            continue
        started = time.perf_counter()
        if not await policy.run(batch):
            return  # stopping with the batch unhandled: it stays uncommitted
        offsets = handler.commit_offsets(batch)
        if not await _commit_until_done(ctx, batch, offsets, stop):
            return
        metrics.batch_seconds.labels(ctx.name).observe(time.perf_counter() - started)
        metrics.batch_size.labels(ctx.name).observe(len(batch))
        _count_and_measure_lag(ctx, batch)


def _kafka_failed(ctx: ServiceContext, what: str, exc: BaseException) -> None:
    metrics.service_errors.labels(ctx.name, type(exc).__name__).inc()
    if ctx.health is not None:
        ctx.health.failed(KAFKA, f"{what}: {type(exc).__name__}: {exc}")


async def _tick(ctx: ServiceContext, handler: BatchHandler, stop: asyncio.Event) -> None:
    """A failing tick (e.g. publishing while the broker is away) is logged and tried again at
    the next turn of the loop; it must not end the service."""
    try:
        await handler.tick()
    except Exception as exc:
        metrics.service_errors.labels(ctx.name, type(exc).__name__).inc()
        log.error("%s: tick failed (%s: %s); trying again", ctx.name, type(exc).__name__, exc)
        await pause(stop, 1.0)


async def _commit_until_done(
    ctx: ServiceContext,
    batch: list[Message],
    offsets: dict[TopicPartition, int] | None,
    stop: asyncio.Event,
) -> bool:
    """Commit past ``batch``, retrying while Kafka is away. False: stopping uncommitted."""

    async def commit_once() -> None:
        try:
            if offsets is None:
                await commit(ctx.consumer, batch)
            elif offsets:
                await ctx.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The partitions went to another member (or this one rejoined): the batch will be
            # delivered again, and handlers are idempotent. Nothing to retry here.
            _kafka_failed(ctx, "commit", exc)
            log.warning("%s: commit refused after a rebalance (%s); moving on", ctx.name, exc)

    def failed(exc: BaseException, delay: float) -> None:
        _kafka_failed(ctx, "commit", exc)
        log.warning("%s: commit failed (%s); retrying in %.1fs", ctx.name, exc, delay)

    done = await retry(commit_once, retry_on=KafkaError, on_failure=failed, stop=stop)
    return done is not None


def _count_and_measure_lag(ctx: ServiceContext, batch: list[Message]) -> None:
    last: dict[TopicPartition, int] = {}
    per_topic: dict[str, int] = {}
    for m in batch:
        last[TopicPartition(m.topic, m.partition)] = m.offset
        per_topic[m.topic] = per_topic.get(m.topic, 0) + 1
    for topic, n in per_topic.items():
        metrics.messages_consumed.labels(ctx.name, topic).inc(n)
    lag: dict[str, int] = {}
    for tp, offset in last.items():
        high = ctx.consumer.highwater(tp)
        if high is not None:
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - offset - 1)
    for topic, value in lag.items():
        metrics.consumer_lag.labels(ctx.name, topic).set(value)
