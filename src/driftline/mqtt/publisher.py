"""Publishing readings over MQTT as a sensor would (QoS 1), for ``driftline simulate --mqtt``.

``MqttPublisher.send`` has the shape of the Kafka producer's, so the simulator's plans are
published unchanged: each reading goes to its sensor's topic (the gateway's pattern with the
sensor id filled in), and its future resolves when the MQTT broker acknowledged it (PUBACK).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import paho.mqtt.client as paho
from rich.console import Console

from driftline.core.errors import ConfigurationError
from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.mqtt.client import make_client
from driftline.mqtt.routing import SENSOR_ID
from driftline.simulate.plans import make_plan
from driftline.simulate.publisher import SimulationReport, publish_simulation

# Unacknowledged publications the client keeps on the wire (paho's default is 20).
MAX_IN_FLIGHT = 1000


def sensor_topic(pattern: str, sensor_id: str) -> str:
    """The topic a sensor publishes to: ``pattern`` with its id in place of ``{sensor_id}``."""
    levels = pattern.split("/")
    if SENSOR_ID not in levels or any(level in ("+", "#") for level in levels):
        raise ConfigurationError(
            f"cannot publish by topic pattern {pattern!r}: it needs {SENSOR_ID} as a level "
            "and no wildcards"
        )
    return pattern.replace(SENSOR_ID, sensor_id)


class MqttPublisher:
    def __init__(self, settings: Settings, pattern: str | None = None) -> None:
        self.pattern = pattern or settings.mqtt_topic_pattern
        sensor_topic(self.pattern, "x")  # fails now on a pattern it cannot fill
        self.client, self.address = make_client(settings, f"driftline-sim-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(MAX_IN_FLIGHT)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[int]] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self._connected: asyncio.Future[None] | None = None

    async def start(self, timeout: float = 15.0) -> None:
        self._loop = asyncio.get_running_loop()
        self._connected = self._loop.create_future()
        self.client.connect_async(self.address.host, self.address.port)
        self.client.loop_start()
        await asyncio.wait_for(asyncio.shield(self._connected), timeout)

    async def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[int]:
        """Publish ``value`` to the topic of sensor ``key`` (``topic``, the Kafka topic the
        simulator names, is not used); the future resolves on the broker's PUBACK."""
        if self._loop is None:
            raise ConfigurationError("MqttPublisher.send before start()")
        if key is None:
            raise ConfigurationError("an MQTT reading needs its sensor id")
        future: asyncio.Future[int] = self._loop.create_future()
        # Not under our lock: paho calls on_publish holding its own, so that order deadlocks.
        info = self.client.publish(sensor_topic(self.pattern, key.decode()), value, qos=1)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise ConfigurationError(f"MQTT publish failed: {paho.error_string(info.rc)}")
        with self._lock:  # the PUBACK may have come before publish() returned
            if info.mid in self._early:
                self._early.discard(info.mid)
                future.set_result(info.mid)
            else:
                self._pending[info.mid] = future
        return future

    def _on_publish(self, _: paho.Client, __: Any, mid: int, reason: Any, ___: Any) -> None:
        with self._lock:
            future = self._pending.pop(mid, None)
            if future is None:
                self._early.add(mid)
        if future is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve, future, mid)

    def _on_connect(self, _: paho.Client, __: Any, ___: Any, reason: Any, ____: Any) -> None:
        if self._loop is not None and self._connected is not None:
            ok = not reason.is_failure
            self._loop.call_soon_threadsafe(_connected, self._connected, ok, str(reason))


def _resolve(future: asyncio.Future[int], mid: int) -> None:
    if not future.done():
        future.set_result(mid)


def _connected(future: asyncio.Future[None], ok: bool, reason: str) -> None:
    if future.done():
        return
    if ok:
        future.set_result(None)
    else:
        future.set_exception(ConfigurationError(f"MQTT broker refused the connection: {reason}"))


async def run_mqtt_simulation(settings: Settings, **options: object) -> SimulationReport:
    """``driftline simulate --mqtt URL``: the simulated pumps, published over MQTT."""
    profile = load_profile(settings.profile_path)
    # The CLI's options, each a keyword of make_plan (which checks their values).
    plan = make_plan(profile.features, **options)  # type: ignore[arg-type]
    publisher = MqttPublisher(settings)
    await publisher.start()
    try:
        report = await publish_simulation(publisher, "", plan)
    finally:
        await publisher.stop()
    Console(stderr=True).print(
        f"sent {report.sent:,} readings in {report.elapsed:.1f}s over MQTT to "
        f"{publisher.address} ({sensor_topic(publisher.pattern, '<sensor>')}); "
        f"malformed: {dict(report.malformed) or 0}; drifted: {report.drifted:,}"
    )
    return report
