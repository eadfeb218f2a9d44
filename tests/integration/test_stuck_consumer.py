"""A consumer that stops fetching while records wait (here: its partitions paused behind the
loop's back, as a client stuck after a broker outage behaves) is replaced by a new one, on
the real broker: every record is handled, none is lost, the restart is counted, and an idle
stream is left alone."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from driftline.core.topics import Topics
from driftline.streaming.kafka import ensure_topics, make_producer
from driftline.streaming.messages import Message
from driftline.streaming.runtime import BatchHandler, ServiceContext, run_consumer_service
from tests.streams import wait_for

pytestmark = pytest.mark.integration


class Collect(BatchHandler):
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.values: list[int] = []

    async def handle(self, batch: list[Message]) -> None:
        self.values += [int(m.value) for m in batch]


def restarts(service: str) -> float:
    value = REGISTRY.get_sample_value("driftline_consumer_restarts_total", {"service": service})
    return value or 0.0


async def send(settings, topic: str, values: range) -> None:  # type: ignore[no-untyped-def]
    producer = make_producer(settings)
    await producer.start()
    try:
        for n in values:
            await producer.send(topic, b"%d" % n, key=b"k%d" % (n % 7))
        await producer.flush()
    finally:
        await producer.stop()


async def test_a_consumer_that_stops_fetching_is_replaced_and_nothing_is_lost(make_settings):
    settings = make_settings(consumer_stuck_seconds=2, health_check_seconds=1)
    topic = Topics(settings.topic_prefix).raw_readings
    await ensure_topics(settings, Topics(settings.topic_prefix).all())
    handlers: list[Collect] = []

    def make(ctx: ServiceContext) -> Collect:
        handlers.append(Collect(ctx))
        return handlers[-1]

    stop = asyncio.Event()
    service = asyncio.create_task(
        run_consumer_service("stuck", settings, lambda t: [t.raw_readings], make, stop=stop)
    )
    try:
        await send(settings, topic, range(100))
        await wait_for(lambda: handlers and len(handlers[0].values) >= 100, 60, "the first 100")
        idle_restarts = restarts("stuck")
        await asyncio.sleep(5)  # idle for more than consumer_stuck_seconds, nothing waiting
        assert restarts("stuck") == idle_restarts == 0

        stuck = handlers[0].ctx.consumer
        stuck.pause(*stuck.assignment())
        await send(settings, topic, range(100, 300))
        await wait_for(lambda: len(handlers[0].values) >= 300, 60, "the next 200, after a restart")
        assert handlers[0].ctx.consumer is not stuck
        assert restarts("stuck") == 1
        assert len(handlers) == 1  # the handler and its state outlive the consumer
        assert set(handlers[0].values) == set(range(300))
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
