"""The gateway's loop: MQTT messages in, Kafka records out, and only then MQTT acknowledgements.

paho's network thread receives each message and hands it to the asyncio loop (``Inbox``).
The loop takes everything received while the previous batch was with Kafka (at most
``batch_max_records``), has the handler publish it and waits until Kafka acknowledged every
record; only then does it acknowledge each message to the MQTT broker (PUBACK), in the order
they arrived. A failing batch is retried with backoff and stays unacknowledged: once
``mqtt_receive_maximum`` messages are unacknowledged the broker stops sending and keeps the rest
in the gateway's persistent session, so back-pressure reaches the broker, not memory. A crash
before the acknowledgement makes the broker send the message again: at-least-once, and the raw
store ignores the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import paho.mqtt.client as paho
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from driftline.core import metrics
from driftline.core.backoff import pause
from driftline.core.errors import BrokerError
from driftline.core.health import KAFKA, ServiceHealth, registry
from driftline.core.retry import retry
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.mqtt.client import make_client, session_properties, subscription
from driftline.streaming.kafka import ensure_topics, make_producer
from driftline.streaming.readiness import retry_kafka

log = logging.getLogger(__name__)
MQTT = "mqtt"


@dataclass(slots=True)
class Received:
    """One MQTT message waiting for its acknowledgement."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    session: int  # the connection it came on: a PUBACK is only valid on that one
    at: float  # monotonic time of arrival


class GatewayHandler(Protocol):
    async def handle(self, batch: list[Received]) -> None:
        """Publish ``batch`` and return once Kafka acknowledged all of it; raise to retry."""


class Inbox:
    """Messages from paho's thread to the asyncio loop, in arrival order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[Received] = deque()
        self._wake = asyncio.Event()
        self._waiting = False

    def put(self, item: Received) -> None:
        """Called from paho's thread."""
        self._items.append(item)
        if self._waiting:
            self._waiting = False
            self._loop.call_soon_threadsafe(self._wake.set)

    async def take(self, limit: int, timeout: float) -> list[Received]:
        """Up to ``limit`` messages: what is there now, else the first to arrive within
        ``timeout`` seconds (else none)."""
        if not self._items:
            self._wake.clear()
            self._waiting = True
            if not self._items:  # put() may have run between the check and the flag
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            self._waiting = False
        items = self._items
        return [items.popleft() for _ in range(min(limit, len(items)))]


class MqttSession:
    """The paho client on its own network thread: connects, resubscribes after every
    (re)connection, and feeds the inbox. Acknowledgements are the caller's."""

    def __init__(self, settings: Settings, health: ServiceHealth, inbox: Inbox) -> None:
        self.settings = settings
        self.health = health
        self.inbox = inbox
        self.client, self.address = make_client(settings, settings.mqtt_client_id, manual_ack=True)
        self.session = 0
        self.subscribed = False  # on the current connection
        self._lock = threading.Lock()  # paho's thread changes the session under it
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.health.down(MQTT, f"connecting to {self.address}")
        self.client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self.settings.mqtt_keepalive_seconds,
            clean_start=False,
            properties=session_properties(self.settings),
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()  # the session stays on the broker: its expiry is set
        self.client.loop_stop()
        metrics.mqtt_connected.set(0)

    def ack(self, batch: list[Received]) -> None:
        """PUBACK every message of ``batch``, in order. One that came on an earlier connection
        is not acknowledged: the broker sends it again on this one (its id may be reused)."""
        now = time.monotonic()
        with self._lock:
            session = self.session
        for r in batch:
            if r.qos and r.session == session:
                self.client.ack(r.mid, r.qos)
            metrics.mqtt_ack_lag.observe(now - r.at)
        metrics.mqtt_in_flight.dec(len(batch))

    def _on_connect(self, client: paho.Client, _: Any, flags: Any, reason: Any, __: Any) -> None:
        if reason.is_failure:
            self.health.failed(MQTT, f"{self.address} refused the connection: {reason}")
            log.error("MQTT broker %s refused the connection: %s", self.address, reason)
            return
        with self._lock:
            self.session += 1
        metrics.mqtt_connected.set(1)
        log.info(
            "connected to %s as %s (session %s); subscribing to %s",
            self.address,
            self.settings.mqtt_client_id,
            "resumed" if flags.session_present else "new",
            subscription(self.settings),
        )
        client.subscribe(subscription(self.settings), qos=1)

    def _on_subscribe(self, _: paho.Client, __: Any, ___: int, codes: Any, ____: Any) -> None:
        failed = [c for c in codes if c.is_failure]
        if failed:
            self.health.failed(MQTT, f"subscription refused: {failed[0]}")
            log.error("MQTT broker refused the subscription: %s", failed[0])
        else:
            self.subscribed = True
            self.health.ok(MQTT)

    def check(self) -> None:
        """Refresh the MQTT half of readiness: connected and subscribed."""
        if self.client.is_connected() and self.subscribed:
            self.health.ok(MQTT)
        else:
            self.health.down(MQTT, f"not connected and subscribed to {self.address}")

    def _on_disconnect(self, _: paho.Client, __: Any, ___: Any, reason: Any, ____: Any) -> None:
        self.subscribed = False
        metrics.mqtt_connected.set(0)
        self.health.failed(MQTT, f"disconnected from {self.address}: {reason}")
        log.warning("disconnected from %s (%s); reconnecting", self.address, reason)

    def _on_message(self, _: paho.Client, __: Any, msg: paho.MQTTMessage) -> None:
        metrics.mqtt_received.inc()
        metrics.mqtt_in_flight.inc()
        self.inbox.put(
            Received(
                msg.topic, bytes(msg.payload), msg.mid, msg.qos, self.session, time.monotonic()
            )
        )


async def run_gateway(
    name: str,
    settings: Settings,
    make_handler: Callable[[AIOKafkaProducer, Topics], GatewayHandler],
    stop: asyncio.Event,
) -> None:
    """Run the gateway until ``stop`` is set; ``make_handler(producer, topics)`` builds the
    handler that publishes a batch."""
    interval = settings.health_check_seconds
    health = registry.register(ServiceHealth(name, (MQTT,), stale_after=3 * interval))
    health.down(KAFKA, "connecting")
    topics = Topics(settings.topic_prefix)
    producer = make_producer(settings, request_timeout_ms=15_000)
    session: MqttSession | None = None
    watcher: asyncio.Task[None] | None = None
    try:
        if not (
            await retry_kafka(name, lambda: ensure_topics(settings, topics.all()), stop, health)
            and await retry_kafka(f"{name} producer", producer.start, stop, health)
        ):
            return
        health.ok(KAFKA)
        handler = make_handler(producer, topics)
        session = MqttSession(settings, health, Inbox(asyncio.get_running_loop()))
        session.start()
        watcher = asyncio.create_task(_watch(producer, session, interval, stop))
        await _loop(name, settings, session, handler, stop)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if session is not None:
            session.stop()
        await producer.stop()
        registry.unregister(health)
        log.info("%s stopped", name)


async def _loop(
    name: str,
    settings: Settings,
    session: MqttSession,
    handler: GatewayHandler,
    stop: asyncio.Event,
) -> None:
    topics = Topics(settings.topic_prefix)
    while not stop.is_set():
        batch = await session.inbox.take(settings.batch_max_records, timeout=0.5)
        if not batch:
            continue
        if not await _publish(name, batch, handler, session, settings, topics, stop):
            return  # unacknowledged: the broker sends them again to the next run
        session.ack(batch)


async def _publish(
    name: str,
    batch: list[Received],
    handler: GatewayHandler,
    session: MqttSession,
    settings: Settings,
    topics: Topics,
    stop: asyncio.Event,
) -> bool:
    """Publish ``batch``, retrying while Kafka is away: True once acknowledged by Kafka, False
    when stopping first."""
    tries = 0

    async def publish() -> None:
        nonlocal tries
        tries += 1
        if tries > 1:
            # Kafka may have come back without the topics (e.g. a memory-only broker).
            with contextlib.suppress(KafkaError, BrokerError, OSError):
                await ensure_topics(settings, topics.all())
        await handler.handle(batch)

    def failed(exc: BaseException, delay: float) -> None:
        metrics.mqtt_failed.labels(type(exc).__name__).inc()
        session.health.failed(KAFKA, f"publishing: {type(exc).__name__}: {exc}")
        log.warning(
            "%s: publishing %d MQTT messages failed (%s: %s); not acknowledging them, "
            "retrying in %.1fs",
            name,
            len(batch),
            type(exc).__name__,
            exc,
            delay,
        )

    retry_on = (KafkaError, BrokerError, OSError)
    return await retry(publish, retry_on=retry_on, on_failure=failed, stop=stop) is not None


async def _watch(
    producer: AIOKafkaProducer, session: MqttSession, interval: float, stop: asyncio.Event
) -> None:
    """Check Kafka (a metadata request) and the MQTT session every ``interval`` seconds."""
    health = session.health
    while not stop.is_set():
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), max(1.0, interval))
        except (KafkaError, OSError, TimeoutError) as exc:
            health.failed(KAFKA, f"metadata request failed: {exc or type(exc).__name__}")
        else:
            health.ok(KAFKA)
        session.check()
        await pause(stop, interval)
