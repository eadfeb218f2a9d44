"""The consumer loop with two batches in flight (ingest's and the validator's default), on the
real broker: a later batch handled first commits nothing until every batch before it is
handled, the offsets end where the stream ends, each message handled once, and a handler that
publishes puts its records out in poll order even when an earlier batch is retried."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from driftline.core.topics import Topics
from driftline.streaming.batch_order import earlier_batches_done
from driftline.streaming.kafka import ensure_topics, make_producer, publish_all
from driftline.streaming.messages import Message
from driftline.streaming.runtime import BatchHandler, ServiceContext, run_consumer_service
from tests.streams import read_topic, wait_for

pytestmark = pytest.mark.integration


class OutOfOrder(BatchHandler):
    """Holds its first batch until its second is handled."""

    batches_in_flight = 2

    def __init__(self, ctx: ServiceContext, partitions: list[TopicPartition]) -> None:
        self.ctx = ctx
        self.partitions = partitions
        self.handled: list[tuple[int, int]] = []
        self.calls = 0
        self.second_done = asyncio.Event()
        self.committed_when_second_done: dict[TopicPartition, int | None] = {}

    async def handle(self, batch: list[Message]) -> None:
        self.calls += 1
        if self.calls == 1:
            # The loop must start the second batch meanwhile (else this times out).
            await asyncio.wait_for(self.second_done.wait(), 20)
        self.handled += [(m.partition, m.offset) for m in batch]
        if self.calls == 2:
            consumer = self.ctx.consumer
            self.committed_when_second_done = {
                tp: await consumer.committed(tp) for tp in self.partitions
            }
            self.second_done.set()


class RetriedFirst(BatchHandler):
    """Forwards each batch to the valid readings topic; the first batch's first attempt fails
    (the broker timed out) once the second batch is being handled beside it."""

    batches_in_flight = 2

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.failed = False
        self.second_started = asyncio.Event()

    async def handle(self, batch: list[Message]) -> None:
        if batch[0].offset > 0:
            self.second_started.set()
        elif not self.failed:
            await asyncio.wait_for(self.second_started.wait(), 20)
            self.failed = True
            raise KafkaTimeoutError("no acknowledgement in time")  # retried after a backoff
        await earlier_batches_done()
        topic = self.ctx.topics.valid_readings
        await publish_all(self.ctx.producer, [(topic, m.key, m.value) for m in batch])


async def publish_numbers(settings, topic: str, count: int) -> None:  # type: ignore[no-untyped-def]
    await ensure_topics(settings, Topics(settings.topic_prefix).all())
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(count):
            await producer.send(topic, b"%d" % i, key=b"k")
        await producer.flush()
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def consuming(settings, make) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    """The shared consumer loop on the raw topic with the handler ``make`` builds, stopped
    again on the way out."""
    stop = asyncio.Event()
    service = asyncio.create_task(
        run_consumer_service("inflight", settings, lambda t: [t.raw_readings], make, stop=stop)
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)


async def test_a_batch_is_committed_only_after_every_batch_before_it(make_settings):
    settings = make_settings(topic_partitions=1, batch_max_records=10)
    topics = Topics(settings.topic_prefix)
    await publish_numbers(settings, topics.raw_readings, 30)

    partitions = [TopicPartition(topics.raw_readings, 0)]
    handlers: list[OutOfOrder] = []

    def make(ctx: ServiceContext) -> OutOfOrder:
        handlers.append(OutOfOrder(ctx, partitions))
        return handlers[0]

    async def all_committed() -> bool:
        if not handlers:
            return False
        return await handlers[0].ctx.consumer.committed(partitions[0]) == 30

    async with consuming(settings, make):
        await wait_for(all_committed, 60, "every offset committed")

    handler = handlers[0]
    # The second batch was handled while the first was not: nothing was committed yet.
    assert handler.committed_when_second_done == {partitions[0]: None}
    assert sorted(handler.handled) == [(0, offset) for offset in range(30)]


async def test_a_retried_batch_still_publishes_before_the_batch_after_it(make_settings):
    settings = make_settings(topic_partitions=1, batch_max_records=10)
    topics = Topics(settings.topic_prefix)
    await publish_numbers(settings, topics.raw_readings, 30)
    handlers: list[RetriedFirst] = []

    def make(ctx: ServiceContext) -> RetriedFirst:
        handlers.append(RetriedFirst(ctx))
        return handlers[0]

    async def all_forwarded() -> bool:
        return len(await read_topic(settings, topics.valid_readings)) >= 30

    async with consuming(settings, make):
        await wait_for(all_forwarded, 60, "every message forwarded")

    assert handlers[0].failed and handlers[0].second_started.is_set()
    out = [int(m.value) for m in await read_topic(settings, topics.valid_readings)]
    assert out == list(range(30))
