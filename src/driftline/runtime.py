"""The loop every consuming service shares: poll a micro-batch, handle it, commit, repeat.

A handler must be idempotent: when it raises (the database is down, the broker refused a
write), the same batch is retried with backoff and its offsets stay uncommitted, so the
service applies back-pressure instead of losing or skipping readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from driftline import metrics
from driftline.errors import BrokerError
from driftline.kafka import commit, ensure_topics, make_consumer, make_producer, poll_batch
from driftline.messages import Message
from driftline.settings import Settings
from driftline.topics import Topics

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 10.0
    _delay: float = field(default=0.0, init=False)

    def next(self) -> float:
        self._delay = min(self.maximum, self._delay * 2 if self._delay else self.initial)
        return self._delay


@dataclass
class ServiceContext:
    """What a running service's handler may use."""

    name: str
    settings: Settings
    topics: Topics
    producer: AIOKafkaProducer
    consumer: AIOKafkaConsumer


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


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _retry(what: str, action: Callable[[], Awaitable[object]], stop: asyncio.Event) -> bool:
    """Run ``action`` until it succeeds (True) or ``stop`` is set (False)."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            await action()
            return True
        except (KafkaError, BrokerError, OSError) as exc:
            delay = backoff.next()
            log.warning("%s: Kafka not reachable (%s); retrying in %.1fs", what, exc, delay)
            await pause(stop, delay)
    return False


async def run_consumer_service(
    name: str,
    settings: Settings,
    subscribe: Callable[[Topics], Sequence[str]],
    make_handler: Callable[[ServiceContext], BatchHandler],
    *,
    stop: asyncio.Event | None = None,
) -> None:
    """Run service ``name`` until ``stop`` is set."""
    stop = stop or asyncio.Event()
    topics = Topics(settings.topic_prefix)
    if not await _retry(name, lambda: ensure_topics(settings, topics.all()), stop):
        return
    consumer = make_consumer(settings, settings.group_id(name), subscribe(topics))
    producer = make_producer(settings)
    try:
        if not (
            await _retry(f"{name} producer", producer.start, stop)
            and await _retry(f"{name} consumer", consumer.start, stop)
        ):
            return
        ctx = ServiceContext(name, settings, topics, producer, consumer)
        handler = make_handler(ctx)
        log.info("%s running, consuming %s", name, ", ".join(subscribe(topics)))
        await _loop(ctx, handler, stop)
    finally:
        await consumer.stop()
        await producer.stop()
        log.info("%s stopped", name)


async def _loop(ctx: ServiceContext, handler: BatchHandler, stop: asyncio.Event) -> None:
    s = ctx.settings
    while not stop.is_set():
        await handler.tick()
        batch = await poll_batch(ctx.consumer, s.batch_max_records, s.batch_max_wait_ms)
        if not batch:
            continue
        started = time.perf_counter()
        if not await _handle_until_done(ctx.name, handler, batch, stop):
            return  # stopping with the batch unhandled: it stays uncommitted
        offsets = handler.commit_offsets(batch)
        if offsets is None:
            await commit(ctx.consumer, batch)
        elif offsets:
            await ctx.consumer.commit(offsets)
        metrics.batch_seconds.labels(ctx.name).observe(time.perf_counter() - started)
        metrics.batch_size.labels(ctx.name).observe(len(batch))
        _count_and_measure_lag(ctx, batch)


async def _handle_until_done(
    name: str, handler: BatchHandler, batch: list[Message], stop: asyncio.Event
) -> bool:
    backoff = Backoff()
    while True:
        try:
            await handler.handle(batch)
            return True
        except Exception as exc:  # the policy: log where, count, retry the same batch
            metrics.service_errors.labels(name, type(exc).__name__).inc()
            delay = backoff.next()
            first = batch[0]
            log.error(
                "%s: batch of %d from %s[%d]@%d failed (%s: %s); retrying in %.1fs",
                name,
                len(batch),
                first.topic,
                first.partition,
                first.offset,
                type(exc).__name__,
                exc,
                delay,
            )
            await pause(stop, delay)
            if stop.is_set():
                return False


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
