"""The drift service's restart recovery (driftline.drift_recovery) against the real broker:
it learns the emitted windows of the sensors it will replay from the tail of the drift-events
topic, back to where its replay starts, without reading the topic from its beginning."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from driftline.core.records import DriftEvent
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.drift import recovery as drift_recovery
from driftline.drift.recovery import emitted_windows
from driftline.streaming.kafka import client_options, ensure_topics
from tests.unit.factories import NOW
from tests.unit.test_policy import event

HOUR_MS = 3_600_000


def drift_event(sensor: str, minutes: int) -> DriftEvent:
    """A window of ``sensor`` ending ``minutes`` after NOW."""
    end = NOW + timedelta(minutes=minutes)
    return event(sensor).model_copy(
        update={"window_start": end - timedelta(minutes=1), "window_end": end}
    )


async def send(
    settings: Settings, topic: str, partition: int, values: list[tuple[bytes, int]]
) -> None:
    """One batch per record: the embedded broker then reports the partition's end exactly."""
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        for value, ts in values:
            await producer.send_and_wait(topic, value, partition=partition, timestamp_ms=ts)
    finally:
        await producer.stop()


async def commit(settings: Settings, topic: str, offsets: dict[int, int]) -> None:
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=settings.group_id("drift"), enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


@pytest.mark.timeout(300)
async def test_restart_recovery_reads_only_the_tail_it_needs(make_settings, monkeypatch):
    monkeypatch.setattr(drift_recovery, "FIRST_CHUNK", 20)
    settings = make_settings(topic_partitions=1, drift_restart_skew_seconds=60)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    now_ms = int(time.time() * 1000)
    old_ms, replay_ms = now_ms - 5 * HOUR_MS, now_ms - HOUR_MS

    # Readings: 10 processed long ago, 5 the drift group will replay (published an hour ago).
    readings = [(b"r", old_ms + i) for i in range(10)] + [(b"r", replay_ms + i) for i in range(5)]
    await send(settings, topics.valid_readings, 0, readings)
    await commit(settings, topics.valid_readings, {0: 10})

    # Drift events: 300 from long ago (sensor pump-old only there), then the recent ones.
    old = [(drift_event("pump-old", i).to_bytes(), old_ms + i) for i in range(300)]
    recent = [
        (drift_event("pump-001", 1000).to_bytes(), replay_ms + 1_000),
        (drift_event("pump-002", 1001).to_bytes(), replay_ms + 2_000),
        (drift_event("pump-001", 1002).to_bytes(), replay_ms + 3_000),
        (b"not a drift event", replay_ms + 4_000),
    ]
    await send(settings, topics.drift_events, 0, old + recent)

    recovered = await emitted_windows(settings)
    assert set(recovered.emitted) == {"pump-001", "pump-002"}
    assert recovered.emitted["pump-001"].window_end == NOW + timedelta(minutes=1002)
    assert recovered.emitted["pump-002"].window_end == NOW + timedelta(minutes=1001)
    assert recovered.since_ms == replay_ms - 60_000
    # The tail: the recent events and one growing chunk before them, not the 300 old ones.
    assert len(recent) < recovered.read < 150

    # Nothing to replay (the group is up to date): nothing read at all.
    await commit(settings, topics.valid_readings, {0: len(readings)})
    caught_up = await emitted_windows(settings)
    assert (caught_up.emitted, caught_up.read, caught_up.since_ms) == ({}, 0, None)


async def test_a_group_without_commits_replays_all_and_reads_back_to_its_start(make_settings):
    settings = make_settings(topic_partitions=1, drift_restart_skew_seconds=0)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    now_ms = int(time.time() * 1000)
    await send(settings, topics.valid_readings, 0, [(b"r", now_ms - 10_000)])
    events = [(drift_event(f"pump-{i:03d}", i).to_bytes(), now_ms - 5_000 + i) for i in range(3)]
    await send(settings, topics.drift_events, 0, events)
    recovered = await emitted_windows(settings)
    assert recovered.read == 3 and len(recovered.emitted) == 3
