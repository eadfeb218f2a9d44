"""``driftline up``: the broker, the four services, serving and (with --demo) simulated pumps,
supervised by one process that stops every child it started when it ends, however it ends.

With --demo each run has a fresh state of its own (``demo_runs``), the first champion is
trained before the pumps start (so nothing heavy runs beside the retraining pipeline later),
and every stage has a deadline (``demo_stages``): the demo closes the loop or says why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.console import Console

from driftline.core.logs import log_to_file
from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.labels.up import start_labeling
from driftline.platform.broker import EmbeddedBroker
from driftline.platform.demo_bootstrap import bootstrap_data
from driftline.platform.demo_runs import new_run_dir
from driftline.platform.demo_watch import DemoWatch
from driftline.platform.mlflow_store import default_template, start_mlflow_store
from driftline.platform.ports import PortPlan
from driftline.platform.services import SERVICE_NAMES
from driftline.platform.supervisor import Supervisor
from driftline.serving.serve import SERVER_PARENT_DEATH, serve_command, serve_env
from driftline.simulate.plans import sensor_ids
from driftline.simulate.signals import SyntheticPump
from driftline.streaming.kafka import record_embedded_broker

log = logging.getLogger(__name__)

# Children's third-party progress bars off (their logs are for reading, not for animation),
# and the libraries' usage telemetry: an on-premise platform does not phone home, and on a
# machine without internet each attempt waits for its timeout.
QUIET_ENV = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "TQDM_DISABLE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "DO_NOT_TRACK": "true",
}


@dataclass(frozen=True)
class DemoOptions:
    sensors: int = 4
    rate: float = 50.0
    drift_at: float = 300.0
    malformed_rate: float = 0.01
    readings_per_sensor: int = 100_000  # the demo ends by itself long before
    fault_share: float = 0.1  # readings in labelled bearing-fault episodes
    # Readings per fault episode: short ones, so a retraining on a drift episode sees several
    # per pump (the AutoML search's cross-validation scores each pump on its own faults).
    fault_rows: int = 5
    bootstrap_rows: int = 3000  # per pump, for the first champion
    settle_seconds: float = 6.0  # streaming on after serving switched, to show drift has stopped
    # ... and on until the drift service has compared a window per sensor started after the
    # promotion (it lags on a busy machine), at most this much longer.
    settle_windows_max_seconds: float = 60.0
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


class Stopped(Exception):
    """SIGTERM arrived before the watch loop took the signals over."""


def _raise_stopped(signum: int, _frame: object) -> None:
    raise Stopped(signum)


def run_platform(
    settings: Settings,
    options: DemoOptions | None,
    *,
    duration: float,
    metrics_base_port: int,
    headless: bool = False,
) -> int:
    """Run the platform until ``duration`` has passed (0: until stopped); a demo (``options``)
    ends by itself once the loop has closed. The exit code of ``driftline up``."""
    console = Console()
    headless = headless or not console.is_terminal
    if options is not None:
        run_dir, removed = new_run_dir(settings.data_dir)
        settings = settings.model_copy(update={"data_dir": run_dir.resolve()})
        if removed:
            names = ", ".join(p.name for p in removed)
            console.print(f"demo: removed {len(removed)} older run folder(s): {names}",
                          highlight=False, soft_wrap=True)  # fmt: skip
        console.print(f"demo: a fresh state in {run_dir}", highlight=False, soft_wrap=True)
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_to_file(logs / "up.log", settings.log_level)
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    profile = load_profile(settings.profile_path)
    broker: EmbeddedBroker | None = None
    supervisor = Supervisor(
        logs,
        max_restarts=settings.supervisor_max_restarts,
        restart_window=settings.supervisor_restart_window_seconds,
        backoff_max=settings.supervisor_backoff_max_seconds,
    )
    try:
        env: dict[str, str] = dict(QUIET_ENV)
        if not settings.kafka_bootstrap_servers:
            broker = EmbeddedBroker(log_path=logs / "broker.log")
            broker.start()
            record_embedded_broker(settings, broker.bootstrap_servers)
            env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
            # The embedded broker holds each group join for half the session timeout.
            env["DRIFTLINE_KAFKA_SESSION_TIMEOUT_MS"] = "2000"
            settings = settings.model_copy(
                update={"kafka_bootstrap_servers": broker.bootstrap_servers}
            )
            settings = _embedded_partitions(settings, env)
        env["DRIFTLINE_DATA_DIR"] = str(settings.data_dir.resolve())
        if options is not None:
            settings = _demo_settings(settings, env)
            # Its features are the drift service's reference: written before the services
            # start; the model trains in a child of its own, before the pumps start.
            frame = bootstrap_data(
                settings,
                profile.features,
                sensor_ids(options.sensors),
                options.bootstrap_rows,
                options.fault_share,
                options.fault_rows,
            )
            data = settings.data_dir / "bootstrap.parquet"
            frame.to_parquet(data, index=False)
            # The store is made before any child starts: serving opens it too, and two
            # processes making one SQLite store's schema at once break its migrations.
            if not default_template().exists():
                console.print("demo: making an empty MLflow store (first run)", highlight=False)
            start_mlflow_store(settings)
            bootstrap_argv = [sys.executable, "-m", "driftline.cli.main", "step", "bootstrap",
                              "--data", str(data)]  # fmt: skip
            supervisor.start_child(
                "bootstrap", bootstrap_argv, serve_env(settings) | env, restart=False
            )
        else:
            ensure_reference(settings, profile.features)
        supervisor.env.update(env)
        ports = PortPlan()
        for i, name in enumerate(SERVICE_NAMES):
            port = ports.claim(metrics_base_port + i, f"{name}'s /metrics")
            supervisor.start_service(name, {"DRIFTLINE_METRICS_PORT": str(port)})
        if settings.mqtt_url:  # sensors that speak MQTT: the gateway feeds the raw topic
            port = ports.claim(metrics_base_port + len(SERVICE_NAMES), "mqtt-gateway's /metrics")
            supervisor.start_service("mqtt-gateway", {"DRIFTLINE_METRICS_PORT": str(port)})
        if options is None:  # the demo runs without labeling: it must end within minutes
            start_labeling(settings, supervisor, ports, metrics_base_port + len(SERVICE_NAMES) + 1)
        serving_port = ports.claim(settings.serving_port, "serving")
        supervisor.start_child(
            "serving",
            serve_command(serving_port),
            serve_env(settings) | env,
            parent_death=SERVER_PARENT_DEATH,
        )
        watch = DemoWatch(
            settings,
            supervisor,
            options,
            profile.features,
            f"http://127.0.0.1:{serving_port}",
            console,
            headless,
        )
        signal.signal(signal.SIGTERM, previous)  # the watch loop handles SIGTERM and SIGINT
        return asyncio.run(watch.run(duration))
    except (Stopped, KeyboardInterrupt):
        console.print("driftline up: stopped before the platform was up", highlight=False)
        return 130
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one clean stop; a second would cut it
        supervisor.stop_all()
        if broker is not None:
            broker.stop()
            with contextlib.suppress(OSError):
                (settings.data_dir / "broker.json").unlink()
        signal.signal(signal.SIGTERM, previous)


def _demo_settings(settings: Settings, env: dict[str, str]) -> Settings:
    """Retrain on the drift episode alone (the new regime), chosen by the AutoML search on a
    short budget, and see drift in windows of 200 readings (4 s at 50/s): the loop closes
    within minutes. The trigger's three drifted windows make an episode of 600 readings a
    pump: the search and the challenger learn from its first half, each pump judged against a
    baseline of its first 100 normal readings of the new regime, and the promotion compares
    on the second half. With the pumps' short fault episodes (``DemoOptions.fault_rows``)
    that half holds a few faults per pump for the search's cross-validation to score each
    pump on. (On half-episodes of about 220 readings with 10-reading faults it held one a
    pump at most, its scores were noise, and the pick could lose to the champion.)
    Settings of the user's own win (those the settings were given: ``model_fields_set``)."""
    demo_defaults: dict[str, object] = {
        "retrain_lookback_seconds": 0.0,
        "drift_window_size": 200,
        "baseline_readings": 100,
        "automl_budget_seconds": 5.0,
    }
    chosen = {
        name: getattr(settings, name) if name in settings.model_fields_set else value
        for name, value in demo_defaults.items()
    }
    for name, value in chosen.items():
        if value is not None:  # None: the user's own unset, which the children inherit
            env[f"DRIFTLINE_{name.upper()}"] = str(value)
    return settings.model_copy(update=chosen)


def _embedded_partitions(settings: Settings, env: dict[str, str]) -> Settings:
    """One partition a topic on the embedded broker, unless the user chose a number.

    `up` runs one replica of each service there, so more partitions spread nothing; and Tansu
    reads through every record batch of a partition at each fetch, so each partition a
    consumer tails costs broker CPU at every batch (docs/kafka.md)."""
    if "topic_partitions" in settings.model_fields_set:
        return settings
    env["DRIFTLINE_TOPIC_PARTITIONS"] = "1"
    return settings.model_copy(update={"topic_partitions": 1})
