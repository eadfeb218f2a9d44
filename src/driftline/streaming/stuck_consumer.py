"""A Kafka consumer that receives nothing while records wait for it is stuck, and is replaced.

After a broker outage a client can come back connected, with partitions assigned, and never
fetch again (seen here once with aiokafka after the embedded broker restarted; other Kafka
clients have the same class of bug). Its /readyz looks fine and its lag only grows. The
consumer loop asks ``StuckWatch`` between polls; when nothing arrived for
``DRIFTLINE_CONSUMER_STUCK_SECONDS`` it asks the broker where the assigned partitions end, and
if records wait past the consumer's position (or the position is not known at all), the loop
closes the consumer and opens a new one. Handlers are idempotent and offsets are committed
only after handling, so the new consumer's redelivery loses and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from driftline.core.health import KAFKA

if TYPE_CHECKING:
    from driftline.streaming.runtime import ServiceContext

log = logging.getLogger(__name__)


@dataclass
class StuckWatch:
    """When the consumer last moved, and whether it is time to ask the broker about it."""

    after_seconds: float
    clock: Callable[[], float] = time.monotonic
    _moved_at: float = field(init=False)

    def __post_init__(self) -> None:
        self._moved_at = self.clock()

    def moved(self) -> None:
        """Records arrived, or none were waiting: the consumer is not stuck."""
        self._moved_at = self.clock()

    def due(self) -> bool:
        """Nothing arrived for ``after_seconds``: time to compare positions with log ends."""
        return self.idle_seconds() >= self.after_seconds

    def idle_seconds(self) -> float:
        return self.clock() - self._moved_at


def waiting(ends: dict[TopicPartition, int], positions: dict[TopicPartition, int | None]) -> int:
    """Records past the consumer's positions; a partition whose position is unknown (None)
    counts as everything up to its end."""
    return sum(max(end - (positions.get(tp) or 0), 0) for tp, end in ends.items())


async def records_waiting(consumer: AIOKafkaConsumer, timeout: float) -> int | None:
    """Records the broker holds past this consumer's positions; None when the broker did not
    answer (an outage: the loop's retries deal with it, not a restart)."""
    assigned = list(consumer.assignment())
    if not assigned:
        return 0
    try:
        ends = await asyncio.wait_for(consumer.end_offsets(assigned), timeout)
    except (KafkaError, OSError, TimeoutError):
        return None
    positions: dict[TopicPartition, int | None] = {}
    for tp in assigned:
        try:
            positions[tp] = await asyncio.wait_for(consumer.position(tp), timeout)
        except (KafkaError, TimeoutError):
            positions[tp] = None  # no position for this long: the client cannot fetch either
    return waiting(ends, positions)


async def consumer_stuck(ctx: ServiceContext, watch: StuckWatch) -> bool:
    """True when records wait on the partitions of a consumer that received nothing: the
    service's health says so, and the loop replaces the consumer."""
    waiting = await records_waiting(
        ctx.consumer, timeout=max(1.0, ctx.settings.health_check_seconds)
    )
    if not waiting:  # none waiting (an idle stream), or the broker is away (not the client)
        watch.moved()
        return False
    log.warning(
        "%s: no records for %.0f s while %d wait on its partitions: replacing the consumer",
        ctx.name,
        watch.idle_seconds(),
        waiting,
    )
    if ctx.health is not None:
        ctx.health.down(KAFKA, f"consumer stuck ({waiting} records waiting): replacing it")
    return True
