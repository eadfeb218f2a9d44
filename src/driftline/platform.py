"""``driftline up``: the broker, the four services and (with --demo) simulated pumps, supervised
by one process that stops every child it started when it ends, however it ends."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from rich.console import Console
from rich.live import Live
from sqlalchemy.engine import make_url

from driftline.broker import EmbeddedBroker, free_port
from driftline.demo_bootstrap import bootstrap_champion, bootstrap_data
from driftline.kafka import ensure_topics, make_producer, record_embedded_broker
from driftline.labels.up import start_labeling
from driftline.live_view import one_line, render
from driftline.logs import redact
from driftline.monitor import PlatformMonitor, PlatformState
from driftline.profile import load_profile
from driftline.serve import serve_command, serve_env
from driftline.services import SERVICE_NAMES
from driftline.settings import Settings
from driftline.simulate.inject import DriftInjection
from driftline.simulate.plans import sensor_ids
from driftline.simulate.publisher import SimulationPlan, SimulationReport, publish_simulation
from driftline.simulate.signals import SyntheticPump
from driftline.supervisor import Supervisor
from driftline.topics import Topics

log = logging.getLogger(__name__)


DEMO_TIMEOUT_SECONDS = 420.0  # a loop that has not closed by then will not


@dataclass(frozen=True)
class DemoOptions:
    sensors: int = 4
    rate: float = 50.0
    drift_at: float = 300.0
    malformed_rate: float = 0.01
    readings_per_sensor: int = 100_000  # the demo ends by itself long before
    fault_share: float = 0.1  # readings in labelled bearing-fault episodes
    bootstrap_rows: int = 3000  # per pump, for the first champion
    settle_seconds: float = 10.0  # streaming on after serving switched, to show drift has stopped
    # Wear: vibration and current rise, the pump runs warmer. The champion, which learned that
    # high vibration means a bearing fault, now flags healthy readings.
    drift_features: tuple[str, ...] = (
        "Accelerometer1RMS",
        "Accelerometer2RMS",
        "Current",
        "Temperature",
    )
    drift_stds: float = 6.0


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


def serving_port_for(settings: Settings) -> int:
    """DRIFTLINE_SERVING_PORT when it is free, else any free port."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", settings.serving_port))
            return settings.serving_port
        except OSError:
            log.warning("port %d is taken: serving on another", settings.serving_port)
    return free_port()


def first_champion(settings: Settings, features: list[str], bootstrap: pd.DataFrame) -> str:
    """The demo's first champion: the registry's, or one trained on ``bootstrap`` data."""
    version = bootstrap_champion(settings, features, bootstrap)
    log.info("champion: %s version %s", settings.model_name, version)
    return version


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
    if not demo:  # the demo's first champion brings its reference
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
    options = DemoOptions(sensors=sensors, rate=rate, drift_at=drift_at) if demo else None
    bootstrap = pd.DataFrame()
    if options is not None:
        # Retrain on the drift episode alone (the new regime), without the tuning step: the
        # loop must close within minutes. Settings of the user's own win.
        # Windows of 150 readings (3 s at 50/s): drift is seen in seconds, not minutes.
        demo_defaults = (
            ("RETRAIN_LOOKBACK_SECONDS", "0"),
            ("RETRAIN_SKIP_STEPS", "tune"),
            ("DRIFT_WINDOW_SIZE", "150"),
        )
        for name, value in demo_defaults:
            env[f"DRIFTLINE_{name}"] = os.environ.get(f"DRIFTLINE_{name}", value)
        settings = settings.model_copy(
            update={
                "retrain_lookback_seconds": float(env["DRIFTLINE_RETRAIN_LOOKBACK_SECONDS"]),
                "retrain_skip_steps": env["DRIFTLINE_RETRAIN_SKIP_STEPS"],
            }
        )
        bootstrap = bootstrap_data(
            settings,
            profile.features,
            sensor_ids(options.sensors),
            options.bootstrap_rows,
            options.fault_share,
        )
    supervisor = Supervisor(settings.data_dir / "logs")
    supervisor.env.update(env)
    try:
        for i, name in enumerate(SERVICE_NAMES):
            supervisor.start_service(name, {"DRIFTLINE_METRICS_PORT": str(metrics_base_port + i)})
        if options is None:  # the demo runs without labeling: it must end within minutes
            start_labeling(settings, supervisor, metrics_base_port + len(SERVICE_NAMES))
        serving_port = serving_port_for(settings)
        supervisor.start_child("serving", serve_command(serving_port), serve_env(settings) | env)
        serving_url = f"http://127.0.0.1:{serving_port}"
        champion: Callable[[], str] | None = None
        if options is not None:
            # Trained while the services start and the pumps already stream: the drift service
            # has the reference, and the champion is in place long before a retrained model
            # could challenge it (the pipeline's first MLflow write comes after preprocess).
            champion = functools.partial(first_champion, settings, profile.features, bootstrap)
        return asyncio.run(
            _watch(
                settings,
                supervisor,
                options,
                duration,
                headless,
                profile.features,
                serving_url,
                champion,
            )
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
    serving_url: str,
    champion: Callable[[], str] | None,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await ensure_topics(settings, Topics(settings.topic_prefix).all())
    monitor = PlatformMonitor(settings, serving_url)
    tasks = [asyncio.create_task(monitor.run(stop))]
    sim_report: dict[str, SimulationReport] = {}
    if demo is not None:
        tasks.append(asyncio.create_task(_simulate(settings, demo, features, sim_report)))
    bootstrap = asyncio.create_task(asyncio.to_thread(champion)) if champion else None
    first_champion: str | None = None
    started = time.monotonic()
    console = Console()
    headless = headless or not console.is_terminal
    last_line = 0.0
    switched_at: float | None = None  # when serving first answered with a retrained model
    limit = duration or (DEMO_TIMEOUT_SECONDS if demo is not None else 0.0)
    live = Live(console=console, refresh_per_second=4) if not headless else None
    with live or contextlib.nullcontext():
        while not stop.is_set():
            elapsed = time.monotonic() - started
            supervisor.check()
            report = sim_report.get("report")
            if live is not None:
                live.update(render(monitor.state, report, supervisor, elapsed, serving_url))
            elif elapsed - last_line >= 5:
                print(one_line(monitor.state, report, elapsed), flush=True)
                last_line = elapsed
            if bootstrap is not None and bootstrap.done() and first_champion is None:
                first_champion = bootstrap.result()  # raises if the bootstrap failed
            if (
                first_champion is not None
                and switched_at is None
                and _serving_retrained(monitor.state, first_champion)
            ):
                switched_at = time.monotonic()
            if limit and elapsed >= limit:
                break
            settled = switched_at is not None and time.monotonic() - switched_at >= (
                demo.settle_seconds if demo is not None else 0.0
            )
            if settled:
                break  # the demo has shown the whole loop, and drift gone quiet after it
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
        summary = demo_summary(state, sim_report.get("report"), settings, first_champion)
        print_summary(summary)
        path = settings.data_dir / "demo-summary.json"
        path.write_text(json.dumps(summary, indent=2, default=str))
        print(f"  this summary as JSON: {path}")
        return 0 if summary.get("served_retrained_version") else 1
    return 0


def _retrained(state: PlatformState, first_champion: str | None) -> list[dict[str, object]]:
    """Promotions of models other than the champion the demo started with."""
    return [p for p in state.promotions if str(p.get("model_version")) != first_champion]


def _serving_retrained(state: PlatformState, first_champion: str | None) -> bool:
    """Serving answers with a model promoted during the demo."""
    versions = [str(p.get("model_version")) for p in _retrained(state, first_champion)]
    return state.serving_version is not None and state.serving_version in versions


async def _simulate(
    settings: Settings, demo: DemoOptions, features: list[str], out: dict[str, SimulationReport]
) -> None:
    plan = SimulationPlan(
        sensors=sensor_ids(demo.sensors),
        rows=lambda i: SyntheticPump(seed=100 + i, fault_share=demo.fault_share).rows(
            demo.readings_per_sensor
        ),
        features=features,
        rate=demo.rate,
        drift=DriftInjection("shift", demo.drift_at, list(demo.drift_features), demo.drift_stds),
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


def demo_summary(
    state: PlatformState,
    sim: SimulationReport | None,
    settings: Settings,
    first_champion: str | None = None,
) -> dict[str, object]:
    """What happened, in order, with the times from drift onset; also written as JSON."""
    onset = sim.first_drift_ts if sim is not None else None
    out: dict[str, object] = {
        "readings_sent": sim.sent if sim else 0,
        "malformed_sent": sum(sim.malformed.values()) if sim else 0,
        "stored": state.stored,
        "valid": state.valid,
        "dead_lettered": state.dead_letters,
        "drift_windows": state.drift_windows,
        "drifted_windows": state.drifted_windows,
        "trigger_fired": state.decisions_fired,
        "trigger_held": state.decisions_held,
        "drift_onset": onset,
        "first_drifted_window_at": state.first_drifted_at,
        "retrain_requests": state.retrain_requests,
        "promotions": state.promotions,
        "pipeline_steps": state.pipeline_steps,
        "serving_versions_first_seen": state.serving_first_seen,
        "first_champion": first_champion,
        "served_retrained_version": state.serving_version
        if _serving_retrained(state, first_champion)
        else None,
    }
    times: dict[str, float] = {}
    if onset is not None:
        if state.first_drifted_at is not None:
            times["detection"] = _secs(onset, state.first_drifted_at)
        if state.retrain_requests:
            fired = datetime.fromisoformat(str(state.retrain_requests[0]["requested_at"]))
            times["trigger"] = _secs(onset, fired)
        retrained = _retrained(state, first_champion)
        if retrained:
            promoted = retrained[0]
            times["promotion"] = _secs(onset, datetime.fromisoformat(str(promoted["promoted_at"])))
            seen = state.serving_first_seen.get(str(promoted["model_version"]))
            if seen is not None:
                times["first_prediction_of_new_model"] = _secs(onset, seen)
            drifted, windows = state.drifted_since(
                datetime.fromisoformat(str(promoted["promoted_at"]))
            )
            out["windows_after_promotion"] = windows
            out["drifted_windows_after_promotion"] = drifted
    out["seconds_from_drift_onset"] = times
    out["where_to_look"] = {
        "mlflow": redact(settings.resolved_mlflow_uri),
        "evidently_reports": str(settings.data_dir / "reports"),
        "data_repo": str(settings.resolved_data_repo),
        "data_tags": [f"drift-{str(r.get('request_id'))[:12]}" for r in state.retrain_requests],
        "database": make_url(settings.resolved_database_url).render_as_string(hide_password=True),
        "logs": str(settings.data_dir / "logs"),
    }
    return out


def print_summary(summary: dict[str, object]) -> None:
    lines = ["", "Demo summary"]
    lines.append(
        f"  readings sent: {summary['readings_sent']:,} ({summary['malformed_sent']:,} "
        "malformed on purpose)"
    )
    lines.append(
        f"  stored: {summary['stored']:,}  valid: {summary['valid']:,}  "
        f"dead-lettered: {summary['dead_lettered']:,}"
    )
    lines.append(
        f"  drift windows: {summary['drift_windows']:,}, drifted: {summary['drifted_windows']:,}"
    )
    lines.append(f"  trigger: {summary['trigger_fired']} fired, {summary['trigger_held']} held")
    names = {
        "detection": "drift onset -> first drifted window",
        "trigger": "drift onset -> retraining triggered",
        "promotion": "drift onset -> new model promoted",
        "first_prediction_of_new_model": "drift onset -> first prediction from the new model",
    }
    for key, seconds in summary["seconds_from_drift_onset"].items():  # type: ignore[attr-defined]
        lines.append(f"  {names[key]}: {seconds:.1f} s")
    for p in summary["promotions"]:  # type: ignore[attr-defined]
        lines.append(f"  promoted: {p.get('model_name')} version {p.get('model_version')}")
    if "windows_after_promotion" in summary:
        lines.append(
            f"  windows after the promotion: {summary['windows_after_promotion']}, drifted: "
            f"{summary['drifted_windows_after_promotion']}"
        )
    lines.append(f"  serving answers with version: {summary['served_retrained_version']}")
    for what, where in summary["where_to_look"].items():  # type: ignore[attr-defined]
        lines.append(f"  {what}: {where}")
    print("\n".join(lines))


def _secs(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 1)
