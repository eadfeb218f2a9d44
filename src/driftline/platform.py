"""``driftline up``: the broker, the four services and (with --demo) simulated pumps, supervised
by one process that stops every child it started when it ends, however it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from rich.console import Console
from rich.live import Live
from sqlalchemy.engine import make_url

from driftline.broker import EmbeddedBroker
from driftline.kafka import ensure_topics, make_producer, record_embedded_broker
from driftline.live_view import one_line, render
from driftline.monitor import PlatformMonitor, PlatformState
from driftline.profile import load_profile
from driftline.services import SERVICE_NAMES
from driftline.settings import Settings
from driftline.simulate.inject import DriftInjection
from driftline.simulate.plans import sensor_ids
from driftline.simulate.publisher import SimulationPlan, SimulationReport, publish_simulation
from driftline.simulate.signals import SyntheticPump
from driftline.supervisor import Supervisor
from driftline.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOptions:
    sensors: int = 4
    rate: float = 50.0
    drift_at: float = 1200.0
    malformed_rate: float = 0.01
    readings_per_sensor: int = 6000


def ensure_reference(settings: Settings, features: list[str]) -> None:
    """Without a reference the drift service cannot start: make a baseline of normal pump data."""
    path = settings.resolved_reference_path
    if path.exists():
        return
    rows = [values for _, values, _ in SyntheticPump(seed=12345).rows(5000)]
    frame = pd.DataFrame(rows, columns=features).astype(np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    log.info("no reference data yet: wrote a baseline of normal pump readings to %s", path)


def run_platform(
    settings: Settings,
    *,
    demo: bool,
    sensors: int,
    rate: float,
    drift_at: float,
    duration: float,
    metrics_base_port: int,
    headless: bool = False,
) -> int:
    profile = load_profile(settings.profile_path)
    ensure_reference(settings, profile.features)
    broker: EmbeddedBroker | None = None
    env: dict[str, str] = {}
    if not settings.kafka_bootstrap_servers:
        broker = EmbeddedBroker(log_path=settings.data_dir / "logs" / "broker.log")
        (settings.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        broker.start()
        record_embedded_broker(settings, broker.bootstrap_servers)
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        # The embedded broker holds each group join for half the session timeout.
        env["DRIFTLINE_KAFKA_SESSION_TIMEOUT_MS"] = "2000"
    settings = settings.model_copy(
        update={
            "kafka_bootstrap_servers": env.get(
                "KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers
            )
        }
    )
    env["DRIFTLINE_DATA_DIR"] = str(settings.data_dir.resolve())
    if demo:
        # The simulated pumps carry no anomaly labels to train on yet: the demo records the
        # retraining request instead of running the pipeline.
        env["DRIFTLINE_RETRAIN_LAUNCHER"] = "record"
    options = DemoOptions(sensors=sensors, rate=rate, drift_at=drift_at) if demo else None
    supervisor = Supervisor(settings.data_dir / "logs")
    supervisor.env.update(env)
    try:
        for i, name in enumerate(SERVICE_NAMES):
            supervisor.start_service(name, {"DRIFTLINE_METRICS_PORT": str(metrics_base_port + i)})
        return asyncio.run(
            _watch(settings, supervisor, options, duration, headless, profile.features)
        )
    finally:
        supervisor.stop_all()
        if broker is not None:
            broker.stop()
            (settings.data_dir / "broker.json").unlink(missing_ok=True)


async def _watch(
    settings: Settings,
    supervisor: Supervisor,
    demo: DemoOptions | None,
    duration: float,
    headless: bool,
    features: list[str],
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await ensure_topics(settings, Topics(settings.topic_prefix).all())
    monitor = PlatformMonitor(settings)
    tasks = [asyncio.create_task(monitor.run(stop))]
    sim_report: dict[str, SimulationReport] = {}
    if demo is not None:
        tasks.append(asyncio.create_task(_simulate(settings, demo, features, sim_report)))
    started = time.monotonic()
    console = Console()
    headless = headless or not console.is_terminal
    last_line = 0.0
    fired_at: float | None = None
    live = Live(console=console, refresh_per_second=4) if not headless else None
    with live or contextlib.nullcontext():
        while not stop.is_set():
            elapsed = time.monotonic() - started
            supervisor.check()
            report = sim_report.get("report")
            if live is not None:
                live.update(render(monitor.state, report, supervisor, elapsed))
            elif elapsed - last_line >= 5:
                print(one_line(monitor.state, report, elapsed), flush=True)
                last_line = elapsed
            if demo is not None and monitor.state.retrain_requests and fired_at is None:
                fired_at = time.monotonic()
            if duration and elapsed >= duration:
                break
            if demo is not None and not duration and fired_at is not None:
                break  # the demo has shown the whole loop
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    sim_task = tasks[1] if demo is not None else None
    if sim_task is not None:
        sim_task.cancel()  # stop sending, then let ingest catch up before the summary
        await asyncio.gather(sim_task, return_exceptions=True)
        report = sim_report.get("report")
        deadline = time.monotonic() + 15
        while report and monitor.state.stored < report.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    state = monitor.state
    print(one_line(state, sim_report.get("report"), time.monotonic() - started))
    if demo is not None:
        _summary(state, sim_report.get("report"), settings)
    return 0


async def _simulate(
    settings: Settings, demo: DemoOptions, features: list[str], out: dict[str, SimulationReport]
) -> None:
    plan = SimulationPlan(
        sensors=sensor_ids(demo.sensors),
        rows=lambda i: SyntheticPump(seed=100 + i).rows(demo.readings_per_sensor),
        features=features,
        rate=demo.rate,
        drift=DriftInjection(
            "shift",
            demo.drift_at,
            ["Current", "Pressure", "Temperature", "Voltage", "Volume Flow RateRMS"],
            3.0,
        ),
        malformed_rate=demo.malformed_rate,
        seed=1,
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        report = SimulationReport()
        out["report"] = report

        def progress(r: SimulationReport) -> None:
            out["report"] = r

        await publish_simulation(
            producer, Topics(settings.topic_prefix).raw_readings, plan, progress
        )
    finally:
        await producer.stop()


def _summary(state: PlatformState, sim: SimulationReport | None, settings: Settings) -> None:
    lines = ["", "Demo summary"]
    if sim is not None:
        bad = sum(sim.malformed.values())
        lines.append(f"  readings sent: {sim.sent:,} ({bad:,} malformed on purpose)")
    lines.append(
        f"  stored: {state.stored:,}  valid: {state.valid:,}  dead-lettered: {state.dead_letters:,}"
    )
    lines.append(f"  drift windows: {state.drift_windows:,}, drifted: {state.drifted_windows:,}")
    lines.append(f"  trigger: {state.decisions_fired} fired, {state.decisions_held} held")
    onset = sim.first_drift_ts if sim is not None else None
    if onset is not None and state.first_drifted_at is not None:
        lines.append(
            f"  drift onset -> first drifted window: {_seconds(onset, state.first_drifted_at)}"
        )
    for r in state.retrain_requests:
        if onset is not None:
            fired = datetime.fromisoformat(str(r["requested_at"]))
            lines.append(f"  drift onset -> retraining triggered: {_seconds(onset, fired)}")
        lines.append(f"  retrain request {r.get('request_id')}: {r.get('reason')}")
    database = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    lines.append(f"  raw readings and trigger decisions: {database}")
    lines.append(f"  service logs: {settings.data_dir / 'logs'}")
    print("\n".join(lines))


def _seconds(start: datetime, end: datetime) -> str:
    return f"{(end - start).total_seconds():.1f} s"
