"""Helpers for tests that run services against the real broker."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from sqlalchemy.exc import SQLAlchemyError

from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.platform.services import load_service
from driftline.simulate.publisher import SimulationPlan, SimulationReport, publish_simulation
from driftline.store.raw_store import RawStore
from driftline.streaming.kafka import ensure_topics, make_producer, read_to_end
from driftline.streaming.messages import Message


async def read_topic(settings: Settings, topic: str, timeout: float = 30.0) -> list[Message]:
    return await read_to_end(settings, topic, timeout)


async def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25
) -> None:
    """Wait until ``predicate()`` (sync or async) is truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_for_count(
    measure: Callable[[], int | Awaitable[int]],
    target: int,
    what: str,
    stall: float = 60.0,
    interval: float = 0.5,
) -> int:
    """Wait until ``measure()`` (sync or async) reaches ``target``, for as long as it keeps
    growing: fail once it has not grown for ``stall`` seconds (a loaded machine is slow, a lost
    message stalls it)."""

    async def value() -> int:
        result = measure()
        return await result if inspect.isawaitable(result) else result

    last, grew = await value(), time.monotonic()
    while last < target:
        await asyncio.sleep(interval)
        now = await value()
        if now > last:
            last, grew = now, time.monotonic()
        elif time.monotonic() - grew > stall:
            raise AssertionError(f"{what}: stuck at {last:,} of {target:,} for {stall:.0f}s")
    return last


@contextlib.asynccontextmanager
async def running(
    settings: Settings, names: Sequence[str], **kwargs: object
) -> AsyncIterator[None]:
    """Run services in this process (each with its real Kafka clients and database)."""
    await ensure_topics(settings, Topics(settings.topic_prefix).all())
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(load_service(n).run(settings, stop, **kwargs), name=n) for n in names
    ]
    try:
        yield
        for t in tasks:
            if t.done():
                t.result()  # surface a service that crashed
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


async def publish(settings: Settings, plan: SimulationPlan) -> SimulationReport:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    producer = make_producer(settings)
    await producer.start()
    try:
        return await publish_simulation(producer, topics.raw_readings, plan, keep_sent=True)
    finally:
        await producer.stop()


def rows_stored(store: RawStore) -> int:
    """Rows in the raw store so far: none while the table is not there yet (ingest, started
    beside the test, creates it) or the database does not answer (an outage test's)."""
    try:
        return store.count()
    except SQLAlchemyError:
        return 0
