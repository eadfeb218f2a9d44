"""mqtt-gateway: MQTT readings to the raw topic, acknowledged to MQTT only after Kafka has them.

Subscribes (QoS 1, persistent session, shared subscription) to the sensors' topic filter, routes
each message (``driftline.mqtt.routing``: key = sensor id, payload unchanged but for a missing
``sensor_id``), publishes a batch, and acknowledges its messages once Kafka acknowledged every
record (``driftline.mqtt.runtime``). The validator judges the readings like any other; what the
gateway cannot forward (too large, topic outside the pattern) it dead-letters itself.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from aiokafka import AIOKafkaProducer

from driftline.core import metrics
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.mqtt.routing import TOO_LARGE, TOPIC_MISMATCH, TopicPattern, rejected_message, route
from driftline.mqtt.runtime import Received, run_gateway
from driftline.streaming.dead_letters import dead_letter
from driftline.streaming.kafka import publish_all
from driftline.streaming.service_main import service_main

NAME = "mqtt-gateway"


class MqttGatewayHandler:
    def __init__(self, settings: Settings, producer: AIOKafkaProducer, topics: Topics) -> None:
        self.producer = producer
        self.topics = topics
        self.pattern = TopicPattern.parse(settings.mqtt_topic_pattern)
        self.max_bytes = settings.max_message_bytes
        metrics.start_at_zero(metrics.mqtt_rejected, TOO_LARGE, TOPIC_MISMATCH)

    async def handle(self, batch: list[Received]) -> None:
        records: list[tuple[str, bytes | None, bytes]] = []
        rejected: Counter[str] = Counter()
        for m in batch:
            routed = route(m.topic, m.payload, self.pattern, self.max_bytes)
            if routed.check is None:
                records.append((self.topics.raw_readings, routed.key, routed.value))
                continue
            source, reasons = rejected_message(m.topic, routed)
            letter = dead_letter(source, NAME, reasons)
            records.append((self.topics.dead_letter, None, letter.to_bytes()))
            rejected[routed.check] += 1
        await publish_all(self.producer, records)
        metrics.mqtt_forwarded.inc(len(batch) - sum(rejected.values()))
        for check, n in rejected.items():
            metrics.mqtt_rejected.labels(check).inc(n)


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    TopicPattern.parse(settings.mqtt_topic_pattern)  # a bad pattern fails at start, not later
    await run_gateway(
        NAME,
        settings,
        lambda producer, topics: MqttGatewayHandler(settings, producer, topics),
        stop or asyncio.Event(),
    )


if __name__ == "__main__":
    service_main(NAME, run)
