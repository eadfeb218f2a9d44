"""After a batch is handled: commit its offsets (retried while Kafka is away, moved past
after a rebalance) and count what was consumed and how far behind the service is."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from operator import attrgetter
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from driftline.core import metrics
from driftline.core.health import KAFKA
from driftline.core.retry import retry
from driftline.streaming.kafka import commit, ends
from driftline.streaming.messages import Message

if TYPE_CHECKING:
    from driftline.streaming.runtime import ServiceContext

log = logging.getLogger(__name__)


def kafka_failed(ctx: ServiceContext, what: str, exc: BaseException) -> None:
    metrics.service_errors.labels(ctx.name, type(exc).__name__).inc()
    if ctx.health is not None:
        ctx.health.failed(KAFKA, f"{what}: {type(exc).__name__}: {exc}")


async def commit_until_done(
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
            kafka_failed(ctx, "commit", exc)
            log.warning("%s: commit refused after a rebalance (%s); moving on", ctx.name, exc)

    def failed(exc: BaseException, delay: float) -> None:
        kafka_failed(ctx, "commit", exc)
        log.warning("%s: commit failed (%s); retrying in %.1fs", ctx.name, exc, delay)

    done = await retry(commit_once, retry_on=KafkaError, on_failure=failed, stop=stop)
    return done is not None


def count_and_measure_lag(ctx: ServiceContext, batch: list[Message]) -> None:
    places = ends(batch)  # a polled batch's own: no pass over its messages
    topics = {topic for topic, _ in places}
    if len(topics) == 1:  # one subscribed topic, as for most services
        per_topic: Mapping[str, int] = {topics.pop(): len(batch)}
    else:
        per_topic = Counter(map(attrgetter("topic"), batch))
    for topic, n in per_topic.items():
        metrics.messages_consumed.labels(ctx.name, topic).inc(n)
    lag: dict[str, int] = {}
    for (topic, partition), end in places.items():
        high = ctx.consumer.highwater(TopicPartition(topic, partition))
        if high is not None:
            lag[topic] = lag.get(topic, 0) + max(0, high - end)
    for topic, value in lag.items():
        metrics.consumer_lag.labels(ctx.name, topic).set(value)
