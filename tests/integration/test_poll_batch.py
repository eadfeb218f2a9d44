"""``poll_batch`` on the real broker: a polled batch carries each partition's end (past its
last message) from the fetch, and committing it moves every partition exactly there, also
when the consumer has fetched further; through the shared consumer loop, every offset ends
committed where the stream ends and each message is handled once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from driftline.core.topics import Topics
from driftline.streaming.kafka import (
    commit,
    ends,
    ensure_topics,
    make_consumer,
    make_producer,
    poll_batch,
)
from driftline.streaming.messages import Message, Polled
from driftline.streaming.runtime import BatchHandler, ServiceContext, run_consumer_service
from tests.streams import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 3
PER_PARTITION = 40


async def _publish(settings, topic: str) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for p in range(PARTITIONS):
            for i in range(PER_PARTITION):
                await producer.send(topic, b"%d-%d" % (p, i), key=b"k%d" % p, partition=p)
        await producer.flush()
    finally:
        await producer.stop()


async def test_a_polled_batch_carries_its_partition_ends_and_commits_exactly_there(
    make_settings,
):
    settings = make_settings(topic_partitions=PARTITIONS)
    topic = Topics(settings.topic_prefix).raw_readings
    await ensure_topics(settings, [topic])
    await _publish(settings, topic)
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    consumer = make_consumer(settings, f"poll-{uuid.uuid4().hex}", [topic])
    await consumer.start()
    try:
        seen: list[Message] = []
        first: Polled | None = None
        for _ in range(200):
            batch = await poll_batch(consumer, max_records=25, max_wait_ms=500)
            assert isinstance(batch, Polled)
            assert all(isinstance(m, Message) for m in batch)
            if batch:
                # The fetch's ends are what the messages themselves say, partition by partition.
                assert batch.ends == ends(list(batch))
                seen += batch
                if first is None:
                    first = batch
                    # Commit only the first batch, though the consumer fetched further.
                    await commit(consumer, first)
                    committed = {tp: await consumer.committed(tp) for tp in tps}
            if len(seen) == PARTITIONS * PER_PARTITION:
                break
    finally:
        await consumer.stop()

    assert first is not None and 0 < len(first) <= 25
    assert committed == {tp: first.ends.get((topic, tp.partition)) for tp in tps}
    assert sorted((m.partition, m.offset) for m in seen) == [
        (p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)
    ]
    assert all(m.value == b"%d-%d" % (m.partition, m.offset) for m in seen)
    assert all(m.timestamp_ms is not None and m.key == b"k%d" % m.partition for m in seen)


class Recorder(BatchHandler):
    def __init__(self) -> None:
        self.batches: list[list[Message]] = []

    async def handle(self, batch: list[Message]) -> None:
        self.batches.append(batch)


async def test_the_consumer_loop_commits_every_partition_to_its_end(make_settings):
    settings = make_settings(topic_partitions=PARTITIONS, batch_max_records=16)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    await _publish(settings, topics.raw_readings)
    tps = [TopicPartition(topics.raw_readings, p) for p in range(PARTITIONS)]
    name = f"polled-{uuid.uuid4().hex[:8]}"
    recorder = Recorder()
    consumers: list = []

    def make(ctx: ServiceContext) -> Recorder:
        consumers.append(ctx.consumer)
        return recorder

    stop = asyncio.Event()
    service = asyncio.create_task(
        run_consumer_service(name, settings, lambda t: [t.raw_readings], make, stop=stop)
    )
    try:

        async def all_committed() -> bool:
            if not consumers:
                return False
            got = [await consumers[0].committed(tp) for tp in tps]
            return got == [PER_PARTITION] * PARTITIONS

        await wait_for(all_committed, 60, "every partition committed to its end")
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)

    handled = [(m.partition, m.offset) for b in recorder.batches for m in b]
    assert sorted(handled) == [(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)]
    assert all(isinstance(b, Polled) and 0 < len(b) <= 16 for b in recorder.batches)
    labels = {"service": name, "topic": topics.raw_readings}
    consumed = REGISTRY.get_sample_value("driftline_messages_consumed_total", labels)
    assert consumed == PARTITIONS * PER_PARTITION
    assert REGISTRY.get_sample_value("driftline_consumer_lag_messages", labels) == 0
