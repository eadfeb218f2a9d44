"""Waiting for what a service needs, and saying whether it is ready.

Kafka (or a database) that is away at start is waited out with backoff instead of crashing
the service (``retry_kafka``, ``retry_blocking``, ``wait_for_kafka``); while a service runs,
a watcher checks Kafka and its dependencies and reports them to ``driftline.health``
(``check_health``, ``watch_health``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from driftline.core.backoff import pause
from driftline.core.errors import BrokerError
from driftline.core.health import KAFKA, ServiceHealth
from driftline.core.retry import retry
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.streaming.kafka import ensure_topics

T = TypeVar("T")
log = logging.getLogger(__name__)


async def retry_kafka(
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
    return await retry_kafka(name, lambda: ensure_topics(settings, topics.all()), stop)


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


async def watch_health(
    consumer: AIOKafkaConsumer,
    health: ServiceHealth,
    dependencies: Mapping[str, Ping],
    interval: float,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        await check_health(consumer, health, dependencies, timeout=max(1.0, interval))
        await pause(stop, interval)
