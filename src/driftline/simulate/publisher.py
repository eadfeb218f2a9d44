"""Publishes simulated sensors' readings to the raw topic, paced or as fast as possible."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from driftline.core.settings import Settings
from driftline.simulate.inject import MALFORMED_KINDS, DriftInjection, malform
from driftline.simulate.signals import Row
from driftline.streaming.kafka import make_producer


@dataclass
class SimulationPlan:
    sensors: list[str]
    rows: Callable[[int], Iterator[Row]]  # sensor index -> its rows
    features: list[str]
    rate: float = 0.0  # readings per second per sensor; 0: as fast as possible
    span_seconds: float | None = None  # source time the run covers (as-fast-as-possible only)
    drift: DriftInjection | None = None
    malformed_rate: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class SentMessage:
    key: bytes
    value: bytes
    malformed: str | None  # the kind of corruption, or None for a well-formed reading
    drifted: bool
    future: asyncio.Future[Any]  # resolves to the broker's RecordMetadata

    @property
    def place(self) -> tuple[int, int]:
        meta = self.future.result()
        return meta.partition, meta.offset


@dataclass
class SimulationReport:
    sent: int = 0
    valid_sent: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    drifted: int = 0
    first_drift_ts: datetime | None = None
    started: float = field(default_factory=time.monotonic)
    messages: list[SentMessage] = field(default_factory=list)  # kept when asked for

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def simulation_producer(settings: Settings, plan: SimulationPlan) -> AIOKafkaProducer:
    """The producer for ``plan``. A paced plan's readings wait up to
    ``simulator_linger_ms`` to travel together: sent one tick at a time (every 20 ms at 50
    readings/s) they made a batch per tick in every partition, and the embedded broker reads
    through a partition's batches at every fetch, which cost the demo more CPU than any
    service (docs/kafka.md). As fast as possible, batches fill long before that."""
    if plan.rate > 0:
        return make_producer(settings, linger_ms=settings.simulator_linger_ms)
    return make_producer(settings)


async def publish_simulation(
    producer: AIOKafkaProducer,
    topic: str,
    plan: SimulationPlan,
    progress: Callable[[SimulationReport], None] | None = None,
    keep_sent: bool = False,
) -> SimulationReport:
    """Send every sensor's rows interleaved in time order; returns what was sent."""
    rng = random.Random(plan.seed)  # nosec B311  # simulated data, not security
    report = SimulationReport()
    now = datetime.now(UTC)
    # As fast as possible: event times end at "now", so none is in the future.
    anchor = now - timedelta(seconds=plan.span_seconds or 0.0)
    iterators = [plan.rows(i) for i in range(len(plan.sensors))]
    seq = [0] * len(plan.sensors)
    tick = 0
    pending: list[asyncio.Future[object]] = []
    while iterators:
        alive = []
        for i, it in enumerate(iterators):
            row = next(it, None)
            if row is None:
                continue
            alive.append((i, it))
            t, values, label = row
            sensor = plan.sensors[i]
            ts = datetime.now(UTC) if plan.rate > 0 else anchor + timedelta(seconds=t)
            if plan.drift is not None:
                if plan.drift.active(t):
                    report.drifted += 1
                    report.first_drift_ts = report.first_drift_ts or ts
                values = plan.drift.apply(t, values)
                sensor = plan.drift.sensor_id(t, sensor)
            reading: dict[str, object] = {
                "sensor_id": sensor,
                "ts": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "seq": seq[i],
                "values": values,
            }
            if label is not None:
                reading["label"] = label
            seq[i] += 1
            kind: str | None = None
            if plan.malformed_rate and rng.random() < plan.malformed_rate:
                kind = rng.choice(MALFORMED_KINDS)
                payload = malform(kind, reading, plan.features, rng)
                report.malformed[kind] += 1
            else:
                payload = orjson.dumps(reading)
                report.valid_sent += 1
            future = await producer.send(topic, payload, key=sensor.encode())
            pending.append(future)
            if keep_sent:
                drifted = plan.drift is not None and plan.drift.active(t)
                report.messages.append(SentMessage(sensor.encode(), payload, kind, drifted, future))
            report.sent += 1
        iterators = [it for _, it in alive]
        tick += 1
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()
        if progress is not None and tick % 50 == 0:
            progress(report)
        if plan.rate > 0:
            # Pace by the schedule, not by sleeping a fixed time, so the rate does not drift.
            delay = report.started + tick / plan.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    await asyncio.gather(*pending)
    if progress is not None:
        progress(report)
    return report
