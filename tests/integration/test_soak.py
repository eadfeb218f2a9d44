"""Soak: a high steady rate through all four services as processes.

The simulator publishes at a fixed rate (``DRIFTLINE_SOAK_RATE`` readings/s in all, default
SOAK_RATE) for ``DRIFTLINE_SOAK_SECONDS`` (default 60 in ``make test``; ``make soak`` runs it for
10 minutes). Every SAMPLE_SECONDS the test samples
each service's resident memory (VmRSS) and its consumer lag (its
``driftline_consumer_lag_messages`` on /metrics). It asserts:

- memory is bounded: over the second half of the run, no service's RSS grows by more than
  RSS_GROWTH_BOUND_MIB (median of the last quarter against the median of the second quarter),
  and it does not grow sample after sample. The validator's and drift's duplicate memories
  are bounded by ``DRIFTLINE_DEDUP_CAPACITY``; the soak sets a capacity they fill within the
  first quarter of a 1-minute run, so what the bound catches is growth per message beyond
  them. Nor may it rise at every sample of the second half by more than RISE_BOUND_MIB in all
  (a leak too slow for the first bound);
- lag is bounded: never above LAG_BOUND messages while the load runs, and back to zero
  within DRAIN_SECONDS after it stops;
- nothing is lost: the raw store holds every message sent, and every one of them reached the
  valid or the dead-letter topic (valid distinct + dead letters == sent).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
import pandas as pd
import pytest

from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.platform.services import SERVICE_NAMES
from driftline.simulate.plans import make_plan
from driftline.simulate.publisher import (
    SimulationReport,
    publish_simulation,
    simulation_producer,
)
from driftline.simulate.signals import SyntheticPump
from driftline.store.raw_store import RawStore
from driftline.streaming.kafka import ensure_topics
from tests.processes import ServiceProcess, stop_all
from tests.streams import read_topic, wait_for

SOAK_SECONDS = float(os.environ.get("DRIFTLINE_SOAK_SECONDS", "60"))
SOAK_RATE = float(os.environ.get("DRIFTLINE_SOAK_RATE", "1000"))  # readings/s, all sensors
SENSORS = 8
SAMPLE_SECONDS = 5.0
DEDUP_CAPACITY = 10_000  # full after 10 s at 1000 readings/s: before the second quarter
RSS_GROWTH_BOUND_MIB = 24.0
RISE_BOUND_MIB = 8.0
LAG_BOUND = 20_000  # messages: 20 s of input at the default rate
DRAIN_SECONDS = 90.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.soak,
    pytest.mark.timeout(int(SOAK_SECONDS) + 360),
]


async def publish_steadily(settings: Settings) -> SimulationReport:
    profile = load_profile(settings.profile_path)
    plan = make_plan(
        profile.features,
        sensors=SENSORS,
        count=int(SOAK_SECONDS * SOAK_RATE / SENSORS),
        rate=SOAK_RATE / SENSORS,  # per sensor
        malformed_rate=0.01,
        seed=5,
    )
    producer = simulation_producer(settings, plan)  # as `driftline simulate --rate` sends
    await producer.start()
    try:
        return await publish_simulation(producer, Topics(settings.topic_prefix).raw_readings, plan)
    finally:
        await producer.stop()


class Sampler:
    """Every SAMPLE_SECONDS: each service's RSS (MiB) and consumer lag (messages)."""

    def __init__(self, procs: Sequence[ServiceProcess]) -> None:
        self.procs = procs
        self.rss: dict[str, list[tuple[float, float]]] = {p.name: [] for p in procs}
        self.lag: dict[str, list[tuple[float, float]]] = {p.name: [] for p in procs}
        self.started = time.monotonic()

    def sample(self) -> None:
        t = time.monotonic() - self.started
        for p in self.procs:
            assert p.alive(), f"{p.name} died; see {p.log_path}"
            self.rss[p.name].append((t, p.rss_kib() / 1024))
            self.lag[p.name].append((t, p.metrics().get("driftline_consumer_lag_messages", 0.0)))

    async def run(self, until: asyncio.Task[SimulationReport]) -> None:
        while not until.done():
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(SAMPLE_SECONDS)


def quarter(samples: list[tuple[float, float]], q: int, end: float) -> list[float]:
    """Values of the samples in quarter ``q`` (0-3) of [0, end]."""
    return [v for t, v in samples if q * end / 4 <= t < (q + 1) * end / 4] or [samples[-1][1]]


def print_table(sampler: Sampler, report: SimulationReport, drained: float) -> None:
    end = max(t for t, _ in next(iter(sampler.rss.values())))
    print(
        f"\n\nsoak: {report.sent:,} readings in {report.elapsed:.0f}s "
        f"({report.sent / report.elapsed:,.0f}/s), {len(next(iter(sampler.rss.values())))} "
        f"samples; drained {drained:.1f}s after the load stopped"
    )
    print(
        f"{'service':>16} | {'RSS first':>9} | {'RSS med':>8} | {'RSS max':>8} | "
        f"{'RSS 2nd q':>9} | {'RSS 4th q':>9} | {'lag med':>8} | {'lag max':>8}"
    )
    for name in sampler.rss:
        rss = [v for _, v in sampler.rss[name]]
        lag = [v for _, v in sampler.lag[name]]
        print(
            f"{name:>16} | {rss[0]:9.1f} | {statistics.median(rss):8.1f} | {max(rss):8.1f} | "
            f"{statistics.median(quarter(sampler.rss[name], 1, end)):9.1f} | "
            f"{statistics.median(quarter(sampler.rss[name], 3, end)):9.1f} | "
            f"{statistics.median(lag):8.0f} | {max(lag):8.0f}"
        )
    print("(RSS in MiB; lag in messages)")


async def test_soak_steady_load(make_settings, mariadb_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        database_url=mariadb_url,
        reference_path=tmp_path / "reference.parquet",
        dedup_capacity=DEDUP_CAPACITY,
        drift_window_size=500,
        batch_max_wait_ms=250,
    )
    profile = load_profile(settings.profile_path)
    normal = [v for _, v, _ in SyntheticPump(seed=99).rows(3000)]
    pd.DataFrame(normal)[profile.features].to_parquet(settings.resolved_reference_path)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    store = RawStore.from_url(mariadb_url)
    procs = [
        ServiceProcess(name, settings, tmp_path / f"{name}.log", metrics=True)
        for name in SERVICE_NAMES
    ]
    try:
        for p in procs:
            p.start()
        await wait_for(
            lambda: all(" running, consuming " in p.log_text() for p in procs), 90, "services up"
        )
        sending = asyncio.create_task(publish_steadily(settings))
        sampler = Sampler(procs)
        await sampler.run(sending)
        report = await sending
        stopped = time.monotonic()

        def drained() -> bool:
            sampler.sample()
            return store.count() >= report.sent and all(
                lag[-1][1] == 0 for lag in sampler.lag.values()
            )

        await wait_for(drained, DRAIN_SECONDS, "the services to catch up", 1.0)
        drain_seconds = time.monotonic() - stopped
    finally:
        stop_all(procs)

    stored = store.count()
    store.engine.dispose()
    valid = {
        orjson.loads(m.value)["reading_id"]
        for m in await read_topic(settings, topics.valid_readings, 120)
    }
    dead = len(await read_topic(settings, topics.dead_letter, 120))
    print_table(sampler, report, drain_seconds)
    print(f"sent {report.sent:,}, stored {stored:,}, valid {len(valid):,}, dead letters {dead:,}")

    # Nothing lost.
    assert stored == report.sent
    assert len(valid) + dead == report.sent
    assert dead == sum(report.malformed.values())
    # Lag bounded during the load (and zero after it: drained above).
    for name, lag in sampler.lag.items():
        assert max(v for _, v in lag) <= LAG_BOUND, (name, lag)
    # Memory bounded over the second half of the load.
    end = SOAK_SECONDS
    for name, samples in sampler.rss.items():
        loaded = [(t, v) for t, v in samples if t <= end]
        second, fourth = (statistics.median(quarter(loaded, q, end)) for q in (1, 3))
        assert fourth - second <= RSS_GROWTH_BOUND_MIB, (name, second, fourth)
        half = [v for t, v in loaded if t >= end / 2]
        steady_rise = all(b >= a for a, b in zip(half, half[1:], strict=False))
        assert not (steady_rise and half[-1] - half[0] > RISE_BOUND_MIB), (
            f"{name} RSS grows sample after sample: {half}"
        )
