"""Serving latency and throughput: the BentoML service with and without adaptive batching, and a
plain ASGI app (uvicorn, one process: the same JSON decoding, features and model call per
request, no validation, no framework) as the baseline, side by side in one run, each with
requests of several sizes (readings per request: a gateway sends a batch) at several
concurrency levels.

Load comes from wrk (closed loop: each connection sends its next request when the last is
answered), new readings from ``--sensors`` simulated pumps (``wrk_reading.lua``). Every point
is run ``--repeats`` times; the table shows medians. The load generator shares the machine's
cores with the server: on this 2-core box that costs every target alike.

    apt-get install wrk    # once
    .venv/bin/python bench/serving.py [--per-request 1,10,100] [--concurrency 64] \
        [--duration 4] [--repeats 3]
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

import pandas as pd
from rich.console import Console
from rich.table import Table

from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.platform import procs
from driftline.platform.broker import EmbeddedBroker
from driftline.serving.serve import NotReady, serve_command, serve_env, wait_until_ready
from driftline.training import modeling, registry
from driftline.training.features import add_features

BENCH = Path(__file__).resolve().parent
SKAB_VALVE1 = BENCH.parents[1] / "shared" / "data" / "skab" / "data" / "valve1"
console = Console(width=150)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_champion(settings: Settings, skab_dir: Path) -> str:
    """An XGBoost model on valve1 files 0-3 with the pipeline's features, as champion."""
    import mlflow
    import mlflow.xgboost
    from model_quality import load_file

    features = load_profile(settings.profile_path).features
    frames = [load_file(skab_dir / f"{n}.csv") for n in range(4)]
    frame = add_features(pd.concat(frames), features, settings.feature_window)
    model = modeling.fit_model(
        modeling.model_inputs(frame, features), modeling.labels(frame), {}, n_jobs=2
    )
    modeling.use_mlflow(settings)
    client = modeling.mlflow_client(settings)
    with mlflow.start_run(experiment_id=modeling.ensure_experiment(settings, client)):
        info = mlflow.xgboost.log_model(
            model, name="model", registered_model_name=settings.model_name
        )
    version = str(info.registered_model_version)
    registry.set_champion(client, settings.model_name, version)
    return version


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
    base: str, concurrency: int, duration: int, sensors: int, epoch: float, per_request: int = 1
) -> Point:
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
    return Point(
        throughput=result["requests"] / seconds,
        readings=(result["requests"] - failed) * per_request / seconds,  # answered ones only
        p50_ms=result["p50_us"] / 1e3,
        p99_ms=result["p99_us"] / 1e3,
        failed=failed,
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
                for target in chosen:
                    base = f"http://127.0.0.1:{target.port}"
                    point = run_wrk(base, c, args.duration, args.sensors, epoch, n)
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
            version = register_champion(settings, args.skab_dir)
        console.log(f"champion: {settings.model_name} version {version}")
        chosen = [t for t in targets(settings, args.variant) if args.only in t.name]
        results = measure(chosen, args)

    baseline = results[list(results)[-1]]  # the plain ASGI app, or the last target run
    table = Table(title=f"Serving (medians of {args.repeats} runs of {args.duration} s)")
    columns = ("target", "readings/req", "concurrency", "readings/s", "x baseline", "req/s")
    for column in (*columns, "p50 ms", "p99 ms", "p99/p50", "failed"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for name, points in results.items():
        for key in points:
            rate = median(points[key], "readings")
            p50, p99 = median(points[key], "p50_ms"), median(points[key], "p99_ms")
            table.add_row(
                name,
                str(key[0]),
                str(key[1]),
                f"{rate:,.0f}",
                f"{rate / median(baseline[key], 'readings'):.2f}",
                f"{median(points[key], 'throughput'):,.0f}",
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{p99 / p50:.1f}",
                str(sum(p.failed for p in points[key])),
            )
    console.print(table)
    console.print(versions())


if __name__ == "__main__":
    main()
