"""Kafka helpers shared by every service: clients built from settings, topics, micro-batches.

Delivery is at-least-once: a consumer commits an offset only after everything the messages
before it caused (rows, published records) is durable. Sinks are idempotent, so a redelivery
after a crash changes nothing. With ``kafka_exactly_once`` on a real Kafka, producers are
idempotent and consumers read only committed records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from driftline.core.errors import BrokerError
from driftline.core.settings import Settings
from driftline.streaming.messages import Message, Polled

log = logging.getLogger(__name__)

BROKER_FILE = "broker.json"
_PARTITIONER = DefaultPartitioner()


def bootstrap_servers(settings: Settings) -> str:
    """The configured Kafka, else the embedded broker that 'driftline broker' or 'up' started."""
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    path = settings.data_dir / BROKER_FILE
    try:
        return str(json.loads(path.read_text())["bootstrap_servers"])
    except (OSError, ValueError, KeyError):
        raise BrokerError(
            "KAFKA_BOOTSTRAP_SERVERS is not set and no embedded broker is running "
            f"(no {path}): start one with 'driftline broker' or run 'driftline up'"
        ) from None


def record_embedded_broker(settings: Settings, servers: str) -> Path:
    path = settings.data_dir / BROKER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"bootstrap_servers": servers}))
    return path


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection and security options common to producers, consumers and admin clients."""
    opts: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_sasl_mechanism:
        opts["sasl_mechanism"] = settings.kafka_sasl_mechanism
        opts["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            opts["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return opts


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    opts: dict[str, Any] = {
        **client_options(settings),
        "acks": "all",
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "enable_idempotence": settings.kafka_exactly_once,
    }
    return AIOKafkaProducer(**{**opts, **overrides})


def make_consumer(
    settings: Settings, group_id: str | None, topics: Sequence[str], **overrides: Any
) -> AIOKafkaConsumer:
    opts: dict[str, Any] = {
        **client_options(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed" if settings.kafka_exactly_once else "read_uncommitted",
        "max_partition_fetch_bytes": 4 * 1024 * 1024,
        # The join takes about half the session timeout on the embedded broker (it holds
        # JoinGroup that long), so local runs use a short one; see docs/kafka.md.
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": max(100, settings.kafka_session_timeout_ms // 4),
        "rebalance_timeout_ms": settings.kafka_session_timeout_ms,
        "max_poll_interval_ms": 300_000,
    }
    return AIOKafkaConsumer(*topics, **{**opts, **overrides})


async def ensure_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics(
                    [
                        NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=1)
                        for t in missing
                    ]
                )
            log.info("created topics %s", ", ".join(missing))
    except KafkaConnectionError as exc:
        raise BrokerError(
            f"cannot reach Kafka at {client_options(settings)['bootstrap_servers']}"
        ) from exc
    finally:
        await admin.close()


async def poll_batch(consumer: AIOKafkaConsumer, max_records: int, max_wait_ms: int) -> Polled:
    """One micro-batch, bounded by count and by time (empty when nothing arrived), with the
    end of each partition it holds taken from the fetch's lists (one per partition)."""
    polled = await consumer.getmany(timeout_ms=max_wait_ms, max_records=max_records)
    return _to_polled(polled)


def _to_polled(polled: Mapping[TopicPartition, Sequence[Any]]) -> Polled:
    messages: list[Message] = []
    batch_ends: dict[tuple[str, int], int] = {}
    new = tuple.__new__  # a Message per record without NamedTuple's Python-level __new__
    for tp, records in polled.items():
        if not records:
            continue
        topic, partition = tp.topic, tp.partition
        messages += [
            new(Message, (topic, partition, r.offset, r.key, r.value, r.timestamp)) for r in records
        ]
        batch_ends[(topic, partition)] = records[-1].offset + 1
    return Polled(messages, batch_ends)


async def read_to_end(settings: Settings, topic: str, timeout: float = 30.0) -> list[Message]:
    """Everything in ``topic`` up to its end (no consumer group: nothing to join).

    The end is the high watermark of fetch responses: the embedded broker's ListOffsets
    answer for "latest" is wrong (it counts batches), so end_offsets() cannot be used.
    """
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out += _to_polled(await consumer.getmany(timeout_ms=200, max_records=10_000))
            ends = [consumer.highwater(tp) for tp in tps]
            if all(e is not None for e in ends) and all(
                [await consumer.position(tp) >= e for tp, e in zip(tps, ends, strict=True)]
            ):
                return out
        raise BrokerError(f"could not read {topic} to its end within {timeout:.0f}s")
    finally:
        await consumer.stop()


async def commit(consumer: AIOKafkaConsumer, batch: Sequence[Message]) -> None:
    """Commit exactly past the messages of ``batch`` (not whatever the consumer fetched since)."""
    await consumer.commit({TopicPartition(*place): end for place, end in ends(batch).items()})


def ends(batch: Sequence[Message]) -> dict[tuple[str, int], int]:
    """Past the last message of ``batch`` in each (topic, partition) it holds: a ``Polled``
    batch's own ends, else found message by message (tuples, not a TopicPartition each)."""
    if isinstance(batch, Polled):
        return batch.ends
    out: dict[tuple[str, int], int] = {}
    get = out.get
    for m in batch:
        place = (m.topic, m.partition)
        end = m.offset + 1
        if end > get(place, 0):
            out[place] = end
    return out


async def publish_all(
    producer: AIOKafkaProducer, items: Sequence[tuple[str, bytes | None, bytes]]
) -> None:
    """Send (topic, key, value) items and wait until the broker acknowledged every one.

    Keyed items go to the partition ``producer.send`` would pick (the default partitioner),
    in order, in record batches built here: about 3 us of CPU per record instead of the 9 of
    one ``send`` each (its future and callbacks), which the validator pays per reading. The
    partitioner (murmur2 in Python, ~1.7 us) runs once per distinct key and topic of the call:
    a batch's keys are its sensors, a few for many records.
    """
    futures = []
    per_partition: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    partitions: dict[str, list[int]] = {}
    places: dict[tuple[str, bytes], tuple[str, int]] = {}
    for topic, key, value in items:
        if key is None:  # the default partitioner picks a random partition
            futures.append(await producer.send(topic, value))
            continue
        place = places.get((topic, key))
        if place is None:
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            chosen = _PARTITIONER(key, partitions[topic], partitions[topic])
            place = places[(topic, key)] = (topic, chosen)
        per_partition.setdefault(place, []).append((key, value))
    for (topic, partition), records in per_partition.items():
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            if batch.record_count():  # full (and closed by the failed append)
                futures.append(await producer.send_batch(batch, topic, partition=partition))
            batch = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # too large alone
                futures.append(await producer.send(topic, value, key=key, partition=partition))
                batch = producer.create_batch()
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
    if futures:
        await asyncio.gather(*futures)
