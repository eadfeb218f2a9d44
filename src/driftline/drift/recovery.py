"""The drift service's restart recovery: which replayed readings emitted windows hold already.

Drift commits its position in valid readings only up to the oldest reading an open window
holds, so a restart replays readings of other sensors whose windows were emitted already. The
drift events of those windows tell which readings to skip (``Emitted``). They were all
published after the first replayed reading was: so only the tail of the drift-events topic is
read, back to the publish time of the first reading each partition will replay (less
``drift_restart_skew_seconds`` for clocks apart), never the whole topic, which grows with
retention.

The tail is found by reading each partition backwards in growing chunks, by offset: the
embedded broker answers neither timestamp lookups nor end offsets exactly (its "latest" counts
batches, less than the records: a chunk then starts earlier than asked, which reads more, never
less).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from driftline.core.errors import BrokerError
from driftline.core.records import DriftEvent, ValidReading
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.core.valid_topic import WireValidReading
from driftline.streaming.kafka import client_options
from driftline.streaming.messages import Message

log = logging.getLogger("drift")

FIRST_CHUNK = 1000  # drift events per partition read first; each further chunk is 4 times more


@dataclass(frozen=True)
class Emitted:
    """Where a sensor's emitted windows end, as a restarted worker learns it from the topic.

    A reading that was on the topic before the worker started (replayed, or republished by
    a restarted validator) is in one of those windows if its event time is no later than the
    last one's end. Readings published after the start are not judged by this: they are new
    (even with old event times, e.g. a simulator run again), or repeats that ``RecentIds``
    catches.
    """

    window_end: datetime
    started_ms: int  # when this worker started (wall clock, Unix ms)

    def holds(self, reading: ValidReading | WireValidReading, published_ms: int | None) -> bool:
        return (
            published_ms is not None
            and published_ms < self.started_ms
            and reading.ts <= self.window_end
        )


def emitted_from(messages: Iterable[Message], started_ms: int) -> dict[str, Emitted]:
    """Per sensor, the latest end of a window among these drift events."""
    ends: dict[str, datetime] = {}
    for message in messages:
        try:
            event = DriftEvent.model_validate_json(message.value or b"")
        except ValidationError:
            continue  # the trigger dead-letters it; it says nothing about our windows
        end = ends.get(event.sensor_id)
        ends[event.sensor_id] = event.window_end if end is None else max(end, event.window_end)
    return {sensor: Emitted(end, started_ms) for sensor, end in ends.items()}


@dataclass
class Recovered:
    emitted: dict[str, Emitted]
    read: int  # drift events read to learn it
    since_ms: int | None  # publish time the tail goes back to (None: nothing is replayed)


async def emitted_windows(settings: Settings, timeout: float = 120.0) -> Recovered:
    """What a restarting drift worker must skip: the topics exist (``run`` waits for Kafka)."""
    started_ms = int(time.time() * 1000)
    topics = Topics(settings.topic_prefix)
    deadline = time.monotonic() + timeout
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=settings.group_id("drift"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Partitions are read one after another: a fetch the broker holds at a partition's
        # end would delay the next one by this much.
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        # Both first: once a partition is assigned, metadata is fetched for its topic only.
        readings = await _partitions(consumer, topics.valid_readings)
        events = await _partitions(consumer, topics.drift_events)
        first = await _first_replayed_ms(consumer, readings, deadline)
        if first is None:
            return Recovered({}, 0, None)
        since_ms = first - int(settings.drift_restart_skew_seconds * 1000)
        messages: list[Message] = []
        for tp in events:
            messages += await _tail_since(consumer, tp, since_ms, deadline)
    finally:
        await consumer.stop()
    log.info("restart recovery: %d drift events read, back to %d", len(messages), since_ms)
    needed = [m for m in messages if (m.timestamp_ms or 0) >= since_ms]
    return Recovered(emitted_from(needed, started_ms), len(messages), since_ms)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        await consumer._client.force_metadata_update()  # noqa: SLF001
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def _first_replayed_ms(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], deadline: float
) -> int | None:
    """The publish time of the first reading the drift group will read again (the oldest over
    partitions), or None when it is up to date everywhere."""
    found: list[int] = []
    for tp in partitions:
        position = await consumer.committed(tp)
        if position is None:
            position = (await consumer.beginning_offsets([tp]))[tp]
        records = await _read(consumer, tp, position, position + 1, deadline)
        if records:
            found.append(records[0].timestamp_ms or 0)
    return min(found, default=None)


async def _tail_since(
    consumer: AIOKafkaConsumer, tp: TopicPartition, since_ms: int, deadline: float
) -> list[Message]:
    """The records of ``tp`` from the last one published before ``since_ms`` to the end."""
    begin = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]  # may be short of the records (see above)
    chunk = FIRST_CHUNK
    start = max(begin, end - chunk)
    out = await _read(consumer, tp, start, None, deadline)
    while start > begin and (not out or (out[0].timestamp_ms or 0) >= since_ms):
        chunk *= 4
        earlier = max(begin, start - chunk)
        out = await _read(consumer, tp, earlier, start, deadline) + out
        start = earlier
    return out


async def _read(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, stop: int | None, deadline: float
) -> list[Message]:
    """Records of ``tp`` from offset ``start`` up to ``stop`` (None: its end)."""
    consumer.assign([tp])
    consumer.seek(tp, start)
    out: list[Message] = []
    while time.monotonic() < deadline:
        limit = 10_000 if stop is None else max(1, min(10_000, stop - start))
        polled = await consumer.getmany(tp, timeout_ms=200, max_records=limit)
        for r in polled.get(tp, []):
            if stop is None or r.offset < stop:
                out.append(Message(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp))
        end = consumer.highwater(tp)
        position = await consumer.position(tp)
        if (stop is not None and position >= stop) or (end is not None and position >= end):
            return out
    raise BrokerError(f"could not read {tp.topic}[{tp.partition}] within the time allowed")
