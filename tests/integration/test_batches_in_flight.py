"""The consumer loop with two batches in flight (ingest's default), on the real broker: a
later batch handled first commits nothing until every batch before it is handled, and the
offsets end where the stream ends, each message handled once."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from driftline.core.topics import Topics
from driftline.streaming.kafka import ensure_topics, make_producer
from driftline.streaming.messages import Message
from driftline.streaming.runtime import BatchHandler, ServiceContext, run_consumer_service
from tests.streams import wait_for

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


async def test_a_batch_is_committed_only_after_every_batch_before_it(make_settings):
    settings = make_settings(topic_partitions=1, batch_max_records=10)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(30):
            await producer.send(topics.raw_readings, b"%d" % i, key=b"k")
        await producer.flush()
    finally:
        await producer.stop()

    partitions = [TopicPartition(topics.raw_readings, 0)]
    handlers: list[OutOfOrder] = []

    def make(ctx: ServiceContext) -> OutOfOrder:
        handlers.append(OutOfOrder(ctx, partitions))
        return handlers[0]

    stop = asyncio.Event()
    service = asyncio.create_task(
        run_consumer_service("inflight", settings, lambda t: [t.raw_readings], make, stop=stop)
    )
    try:

        async def all_committed() -> bool:
            if not handlers:
                return False
            return await handlers[0].ctx.consumer.committed(partitions[0]) == 30

        await wait_for(all_committed, 60, "every offset committed")
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)

    handler = handlers[0]
    # The second batch was handled while the first was not: nothing was committed yet.
    assert handler.committed_when_second_done == {partitions[0]: None}
    assert sorted(handler.handled) == [(0, offset) for offset in range(30)]
