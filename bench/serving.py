"""Serving latency and throughput: the BentoML service with and without adaptive batching, and a
plain ASGI app (uvicorn, one process: the same JSON decoding, features and model call per
request, no validation, no framework) as the baseline, side by side in one run, each with
requests of several sizes (readings per request: a gateway sends a batch) at several
concurrency levels.

Load comes from wrk (closed loop: each connection sends its next request when the last is
answered), new readings from ``--sensors`` simulated pumps (``wrk_reading.lua``). Every point
is run ``--repeats`` times; the table shows medians. The load generator shares the machine's
cores with the server: on this 2-core box that costs every target alike. Beside readings/s,
readings per CPU second of the target's processes (all of them: BentoML's worker and its
parent), which a machine busy with other work moves far less than the wall clock.

The champion served is what training registers now (``--model anomaly``, the default): an
anomaly-family bundle (the xgboost family with its default recipe, trained on SKAB valve1
files 0-3) with a baseline for each simulated pump, so every reading is scored against its
sensor's own normal; ``--model rolling`` serves the XGBoost on rolling features of before
the anomaly families (issue 4's and the first issue 20 tables).

    apt-get install wrk    # once
    .venv/bin/python bench/serving.py [--per-request 1,10,100] [--concurrency 64] \
        [--duration 4] [--repeats 3] [--model anomaly|rolling]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from driftline.anomaly.automl import defaults
from driftline.anomaly.baseline import from_first_readings
from driftline.anomaly.bundle import ModelBundle
from driftline.anomaly.model import AnomalyModel
from driftline.anomaly.recordings import recording_from_frame
from driftline.anomaly.registered import log_bundle
from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.platform import procs
from driftline.platform.broker import EmbeddedBroker
from driftline.serving.serve import NotReady, serve_command, serve_env, wait_until_ready
from driftline.training import modeling, registry
from driftline.training.features import add_features

BENCH = Path(__file__).resolve().parent
SKAB_VALVE1 = BENCH.parents[1] / "shared" / "data" / "skab" / "data" / "valve1"
console = Console(width=220)


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    command: list[str]
    env: dict[str, str]


@dataclass(frozen=True)
class Point:
    throughput: float  # requests/s, answered or not
    readings: float  # readings/s of the requests answered 2xx
    p50_ms: float
    p99_ms: float
    failed: int
    cpu_seconds: float = 0.0  # CPU time of the target's processes during the run
    answered: int = 0  # readings of the requests answered 2xx

    @property
    def per_cpu_second(self) -> float:
        return self.answered / self.cpu_seconds if self.cpu_seconds else float("nan")


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of process ``root`` and its live descendants (a target and its
    workers, which BentoML starts in sessions of their own)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        pid = int(stat.parent.name)
        parent[pid] = int(fields[1])  # ppid; utime and stime are fields 14 and 15 of stat
        ticks[pid] = int(fields[11]) + int(fields[12])
    total = 0
    for pid in ticks:
        at = pid
        while at > 1 and at != root:
            at = parent.get(at, 0)
        if at == root:
            total += ticks[pid]
    return total / tick


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_champion(settings: Settings, skab_dir: Path, kind: str, sensors: int) -> str:
    """The champion: an anomaly-family bundle (``anomaly``: the xgboost family's defaults on
    valve1 files 0-3, a baseline for each of the ``sensors`` pumps ``wrk_reading.lua``
    simulates) or the XGBoost on rolling features of before (``rolling``)."""
    import mlflow
    import mlflow.xgboost
    from model_quality import load_file

    features = load_profile(settings.profile_path).features
    frames = [load_file(skab_dir / f"{n}.csv") for n in range(4)]
    modeling.use_mlflow(settings)
    client = modeling.mlflow_client(settings)
    with mlflow.start_run(experiment_id=modeling.ensure_experiment(settings, client)):
        if kind == "anomaly":
            info = log_bundle(
                anomaly_bundle(frames, features, settings.baseline_readings, sensors),
                settings.model_name,
                ["xgboost", "pandas", "numpy", "scipy", "pydantic"],
            )
        else:
            frame = add_features(pd.concat(frames), features, settings.feature_window)
            model = modeling.fit_model(
                modeling.model_inputs(frame, features), modeling.labels(frame), {}, n_jobs=2
            )
            info = mlflow.xgboost.log_model(
                model, name="model", registered_model_name=settings.model_name
            )
    version = str(info.registered_model_version)
    registry.set_champion(client, settings.model_name, version)
    return version


def anomaly_bundle(
    frames: list[pd.DataFrame], features: list[str], baseline_readings: int, sensors: int
) -> ModelBundle:
    """The xgboost family's defaults trained on the SKAB frames (their first readings are each
    one's baseline), with a baseline for each simulated pump: readings drawn from the ranges
    ``wrk_reading.lua`` sends (uniform), so the requests' readings are each pump's normal."""
    recordings = [
        recording_from_frame(
            str(f["sensor_id"].iloc[0]), f.assign(anomaly=f["label"]), features, baseline_readings
        )
        for f in frames
    ]
    model = AnomalyModel.fit(defaults("xgboost", tuple(features)), recordings)
    rng = np.random.default_rng(0)
    low = np.array([0.21, 0.27, 2.4, 0.11, 89.5, 28.5, 228.6, 125.2])
    width = np.array([0.01, 0.01, 0.2, 0.01, 1.0, 1.0, 2.0, 2.0])
    baselines = {}
    for i in range(sensors):
        name = f"pump-{i:03d}"
        rows = pd.DataFrame(low + width * rng.random((baseline_readings, 8)), columns=features)
        baseline = from_first_readings(rows, name, features, baseline_readings)
        if baseline is None:
            raise SystemExit(f"{name}: no baseline from {baseline_readings} readings")
        baselines[name] = baseline
    return ModelBundle(model, baselines, tuple(features))


def targets(settings: Settings, variants: list[str]) -> list[Target]:
    env = serve_env(settings)
    ports = [free_port() for _ in range(3 + len(variants))]
    extra = []
    for variant, port in zip(variants, ports[3:], strict=True):
        pairs = dict(p.split("=", 1) for p in variant.split(","))
        changed = {f"DRIFTLINE_SERVING_{k.upper()}": v for k, v in pairs.items()}
        extra.append(
            Target(f"bentoml, adaptive, {variant}", port, serve_command(port), env | changed)
        )
    return [
        Target("bentoml, adaptive batching", ports[0], serve_command(ports[0]), env),
        *extra,
        Target(
            "bentoml, no batching",
            ports[1],
            serve_command(ports[1]),
            env | {"DRIFTLINE_SERVING_ADAPTIVE_BATCHING": "false"},
        ),
        Target(
            "plain ASGI (uvicorn), baseline",
            ports[2],
            [
                sys.executable,
                "-m",
                "uvicorn",
                "plain_asgi:app",
                "--app-dir",
                str(BENCH),
                "--host",
                "127.0.0.1",
                "--port",
                str(ports[2]),
                "--log-level",
                "warning",
                "--no-access-log",
            ],  # fmt: skip
            env,
        ),
    ]


def run_wrk(
    base: str,
    concurrency: int,
    duration: int,
    sensors: int,
    epoch: float,
    per_request: int = 1,
    pid: int | None = None,
) -> Point:
    cpu_before = tree_cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "-s",
            str(BENCH / "wrk_reading.lua"),
            base,
        ],  # fmt: skip
        env={
            **os.environ,
            "SENSORS": str(sensors),
            "BASE_EPOCH": f"{epoch:.3f}",
            "PER_REQUEST": str(per_request),
        },
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    seconds = result["duration_us"] / 1e6
    failed = result["non2xx"] + result["socket_errors"]
    answered = (result["requests"] - failed) * per_request
    return Point(
        throughput=result["requests"] / seconds,
        readings=answered / seconds,  # answered ones only
        p50_ms=result["p50_us"] / 1e3,
        p99_ms=result["p99_us"] / 1e3,
        failed=failed,
        cpu_seconds=tree_cpu_seconds(pid) - cpu_before if pid is not None else 0.0,
        answered=answered,
    )


Key = tuple[int, int]  # (readings per request, concurrency)


def start(target: Target) -> subprocess.Popen[bytes]:
    log_path = Path(tempfile.gettempdir()) / f"driftline-bench-serving-{target.port}.log"
    console.log(f"starting {target.name} (log: {log_path})")
    with log_path.open("wb") as log:
        return procs.start(target.command, env=target.env, stdout=log)


def measure(chosen: list[Target], args: argparse.Namespace) -> dict[str, dict[Key, list[Point]]]:
    """Every target serving at once, taken in turns point by point, so that a change in the
    machine's load falls on all of them alike."""
    keys = [(n, c) for n in args.per_request for c in args.concurrency]
    points: dict[str, dict[Key, list[Point]]] = {t.name: {k: [] for k in keys} for t in chosen}
    # Readings from three days ago on, an hour of timeline a point: each point continues the
    # sensors' series where the last ended, the same for every target (each has its history).
    epoch = (datetime.now(UTC) - timedelta(days=3)).timestamp()
    children = [start(t) for t in chosen]
    try:
        for target, child in zip(chosen, children, strict=True):
            base = f"http://127.0.0.1:{target.port}"
            try:
                wait_until_ready(base, child, timeout=180)
            except NotReady as exc:
                raise SystemExit(f"{target.name}: {exc}") from exc
            run_wrk(base, 8, 2, args.sensors, epoch)  # warm-up
        epoch += 3600
        for repeat in range(args.repeats):
            for n, c in keys:
                console.log(f"{n} a request, concurrency {c}, run {repeat + 1}/{args.repeats}")
                for target, child in zip(chosen, children, strict=True):
                    base = f"http://127.0.0.1:{target.port}"
                    point = run_wrk(base, c, args.duration, args.sensors, epoch, n, child.pid)
                    points[target.name][n, c].append(point)
                epoch += 3600
    finally:
        for child in children:
            procs.stop_group(child)
    return points


def median(points: list[Point], field: str) -> float:
    return statistics.median(getattr(p, field) for p in points)


def versions() -> str:
    from importlib.metadata import version

    libs = ", ".join(
        f"{n} {version(n)}" for n in ("bentoml", "uvicorn", "xgboost-cpu", "pandera", "mlflow")
    )
    return f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; {libs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-request", default="1,10,100", help="readings a request")
    parser.add_argument("--concurrency", default="64", help="comma-separated levels")
    parser.add_argument("--duration", type=int, default=4, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point (medians shown)")
    parser.add_argument("--sensors", type=int, default=64, help="simulated pumps sending")
    parser.add_argument("--skab-dir", type=Path, default=SKAB_VALVE1)
    parser.add_argument(
        "--model",
        choices=("anomaly", "rolling"),
        default="anomaly",
        help="the champion: an anomaly-family bundle (what training registers) or the "
        "rolling-feature XGBoost of before",
    )
    parser.add_argument("--only", default="", help="run only targets whose name contains this")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="one more adaptive batching target, with these settings: "
        "'max_latency_ms=5000,max_batch_size=256' (DRIFTLINE_SERVING_<NAME>); repeatable",
    )
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.per_request = [int(n) for n in args.per_request.split(",")]

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        settings = Settings(  # type: ignore[call-arg]
            kafka_bootstrap_servers=broker.bootstrap_servers, data_dir=Path(tmp)
        )
        with console.status("training and registering the champion"):
            version = register_champion(settings, args.skab_dir, args.model, args.sensors)
        console.log(f"champion: {settings.model_name} version {version} ({args.model})")
        chosen = [t for t in targets(settings, args.variant) if args.only in t.name]
        results = measure(chosen, args)

    baseline = results[list(results)[-1]]  # the plain ASGI app, or the last target run
    title = f"Serving the {args.model} model (medians of {args.repeats} runs of {args.duration} s)"
    table = Table(title=title)
    columns = ("target", "readings/req", "concurrency", "readings/s", "x baseline", "req/s")
    per_cpu = ("readings/CPU s", "x baseline/CPU s")
    for column in (*columns, *per_cpu, "p50 ms", "p99 ms", "p99/p50", "failed"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for name, points in results.items():
        for key in points:
            rate = median(points[key], "readings")
            p50, p99 = median(points[key], "p50_ms"), median(points[key], "p99_ms")
            efficiency = median(points[key], "per_cpu_second")
            table.add_row(
                name,
                str(key[0]),
                str(key[1]),
                f"{rate:,.0f}",
                f"{rate / median(baseline[key], 'readings'):.2f}",
                f"{median(points[key], 'throughput'):,.0f}",
                f"{efficiency:,.0f}",
                f"{efficiency / median(baseline[key], 'per_cpu_second'):.2f}",
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{p99 / p50:.1f}",
                str(sum(p.failed for p in points[key])),
            )
    console.print(table)
    console.print(versions())


if __name__ == "__main__":
    main()
