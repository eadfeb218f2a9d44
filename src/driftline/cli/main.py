"""The ``driftline`` command line. Every command has ``--help``."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from driftline.cli.baseline import baseline_app
from driftline.cli.ops import install as install_ops_commands
from driftline.cli.steps import _time, step_app
from driftline.core.logs import redact
from driftline.core.settings import Settings, env_name
from driftline.core.settings_errors import settings_or_exit
from driftline.labels.cli import labels_app

app = typer.Typer(
    help="Driftline: streaming validation, drift detection and retraining for sensor fleets.\n\n"
    "Settings come from environment variables (see 'driftline settings'). Without "
    "KAFKA_BOOTSTRAP_SERVERS, 'up' and 'broker' start the embedded broker and the other "
    "commands use it; without DATABASE_URL the raw store is SQLite under DRIFTLINE_DATA_DIR.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,  # plain tracebacks: they end up in log files
)
reference_app = typer.Typer(help="Reference data the drift service compares windows with.")
app.add_typer(reference_app, name="reference")
pipeline_app = typer.Typer(
    help="The retraining pipeline (Kubeflow Pipelines): preprocess, tune, train, evaluate, promote."
)
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(step_app, name="step")
install_ops_commands(app)  # --version, doctor
app.add_typer(baseline_app, name="baseline")


def _settings() -> Settings:
    from driftline.core.logs import configure_logging

    settings = settings_or_exit()
    configure_logging(settings.log_level, "driftline")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 9092,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) until Ctrl-C.

    Its address is written to <data_dir>/broker.json, where the other commands find it when
    KAFKA_BOOTSTRAP_SERVERS is not set. Data lives in memory only.
    """
    from driftline.platform.broker import EmbeddedBroker
    from driftline.streaming.kafka import record_embedded_broker

    settings = _settings()
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with EmbeddedBroker(port or None, log_path=settings.data_dir / "broker.log") as b:
        path = record_embedded_broker(settings, b.bootstrap_servers)
        typer.echo(f"broker listening on {b.bootstrap_servers} (recorded in {path}); Ctrl-C stops")
        while not stopping:
            time.sleep(0.2)
    path.unlink(missing_ok=True)


def _service_command(name: str) -> None:
    def command() -> None:
        from driftline.platform.services import load_service
        from driftline.streaming.service_main import service_main

        service_main(name, load_service(name).run, _settings())

    command.__doc__ = {
        "ingest": "Land every raw reading in the raw store (idempotent, at-least-once).",
        "validator": "Validate raw readings in micro-batches; valid on, invalid to the DLQ.",
        "drift": "Compare per-sensor windows of valid readings with the reference data.",
        "retrain-trigger": "Decide when drift is real and launch retraining.",
        "labeler": "Label Studio tasks from the stream, annotations back as labels (continuous).",
    }[name]
    app.command(name=name)(command)


for _name in ("ingest", "validator", "drift", "retrain-trigger", "labeler"):
    _service_command(_name)
app.add_typer(labels_app, name="labels")


@app.command("mqtt-gateway")
def mqtt_gateway() -> None:
    """Forward MQTT readings (DRIFTLINE_MQTT_URL) to the raw topic, at-least-once."""
    from driftline.platform.services import load_service
    from driftline.streaming.service_main import service_main

    service_main("mqtt-gateway", load_service("mqtt-gateway").run, _settings())


@app.command("settings")
def show_settings() -> None:
    """List every setting: its environment variable, current value and meaning."""
    settings = settings_or_exit()
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        typer.echo(f"{env_name(name)}={redact(str(value)) if value is not None else ''}")
        if field.description:
            typer.echo(f"    {field.description}")


@reference_app.command("build")
def reference_build(
    sources: Annotated[list[Path], typer.Argument(help="CSV (SKAB ';' or ',') or Parquet files.")],
    out: Annotated[Path | None, typer.Option(help="Output Parquet (default: the setting).")] = None,
) -> None:
    """Build the baseline reference from files with one column per measurement."""
    from driftline.core.profile import load_profile
    from driftline.drift.reference import build_reference

    settings = _settings()
    profile = load_profile(settings.profile_path)
    target = out or settings.resolved_reference_path
    ref = build_reference(sources, profile.features, target)
    typer.echo(f"reference {ref.reference_id}: {len(ref)} rows x {len(ref.features)} -> {target}")


@app.command()
def simulate(
    sensors: Annotated[int, typer.Option(help="How many pumps (ids pump-001, ...).")] = 3,
    replay: Annotated[
        list[Path] | None,
        typer.Option(help="SKAB-format CSV to replay (repeatable); default: synthetic pumps."),
    ] = None,
    count: Annotated[
        int | None, typer.Option(help="Readings per sensor (default: all / endless).")
    ] = None,
    rate: Annotated[
        float, typer.Option(help="Readings per second per sensor; 0 = as fast as possible.")
    ] = 1.0,
    drift: Annotated[
        str | None, typer.Option(help="Inject drift: shift, scale, noise, stuck or new-sensor.")
    ] = None,
    drift_at: Annotated[
        float, typer.Option(help="Seconds of simulated time when the drift starts.")
    ] = 300.0,
    drift_features: Annotated[
        str, typer.Option(help="Comma-separated measurements the drift affects.")
    ] = "Current,Pressure,Temperature,Voltage,Volume Flow RateRMS",
    drift_magnitude: Annotated[
        float, typer.Option(help="Drift size in standard deviations (scale: factor - 1).")
    ] = 3.0,
    malformed_rate: Annotated[
        float, typer.Option(help="Share of messages sent malformed (0..1).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    mqtt: Annotated[
        str | None,
        typer.Option(
            help="Publish over MQTT to this broker (mqtt://host:1883, mqtts://...), QoS 1, to "
            "each sensor's topic (DRIFTLINE_MQTT_TOPIC_PATTERN), instead of to Kafka."
        ),
    ] = None,
) -> None:
    """Publish sensor readings to the raw topic: synthetic pumps or SKAB replays, with
    optional drift and malformed messages."""
    from driftline.simulate.cli_run import run_simulation

    settings = _settings()
    if mqtt is not None:
        from driftline.mqtt.publisher import run_mqtt_simulation

        settings = settings.model_copy(update={"mqtt_url": mqtt})
        run_simulation = run_mqtt_simulation  # noqa: F811 - the same plan, over MQTT
    if rate == 0 and count is None and not replay:
        raise typer.BadParameter(
            "as fast as possible needs --count or --replay (else it never ends)"
        )
    asyncio.run(
        run_simulation(
            settings,
            sensors=sensors,
            replay=replay or [],
            count=count,
            rate=rate,
            drift=drift,
            drift_at=drift_at,
            drift_features=[f.strip() for f in drift_features.split(",") if f.strip()],
            drift_magnitude=drift_magnitude,
            malformed_rate=malformed_rate,
            seed=seed,
        )
    )


@app.command()
def up(
    demo: Annotated[
        bool, typer.Option(help="Feed the platform with simulated pumps and inject a drift.")
    ] = False,
    sensors: Annotated[int, typer.Option(help="Simulated pumps (demo).")] = 4,
    rate: Annotated[float, typer.Option(help="Readings per second per pump (demo).")] = 50.0,
    drift_at: Annotated[
        float,
        typer.Option(help="Readings per pump before the drift starts (demo; 1 reading = 1 s)."),
    ] = 300.0,
    duration: Annotated[
        float,
        typer.Option(
            help="Stop after this many seconds (0: until Ctrl-C; a demo ends by itself once "
            "the trigger has fired)."
        ),
    ] = 0.0,
    metrics_base_port: Annotated[
        int, typer.Option(help="First /metrics port; the services take it and the next ones.")
    ] = 9401,
    headless: Annotated[
        bool, typer.Option(help="Print a status line every 5 s instead of the live view.")
    ] = False,
) -> None:
    """Run the whole platform on this machine: the embedded broker (unless
    KAFKA_BOOTSTRAP_SERVERS is set), ingest, validator, drift and retrain-trigger (and the
    MQTT gateway when DRIFTLINE_MQTT_URL is set), with a live view. With --demo, simulated
    pumps feed it, a drift is injected, and the run ends once the trigger has fired."""
    from driftline.platform.up import run_platform

    settings = _settings()
    raise typer.Exit(
        run_platform(
            settings,
            demo=demo,
            sensors=sensors,
            rate=rate,
            drift_at=drift_at,
            duration=duration,
            metrics_base_port=metrics_base_port,
            headless=headless,
        )
    )


@app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(help="HTTP port (default: DRIFTLINE_SERVING_PORT, 3000).")
    ] = None,
) -> None:
    """Serve the MLflow champion with BentoML (serving/): predictions for readings, adaptive
    batching, input validation, and a swap when a new champion is promoted."""
    from driftline.serving.serve import serve as run_service

    settings = _settings()
    raise typer.Exit(run_service(settings, port or settings.serving_port))


@pipeline_app.command("run")
def pipeline_run(
    tag: Annotated[str, typer.Option(help="Dataset version tag (a git tag in the data repo).")],
    data_start: Annotated[
        str | None, typer.Option(help="Training data from (ISO 8601, UTC).")
    ] = None,
    data_end: Annotated[
        str | None, typer.Option(help="Training data until (ISO 8601, UTC).")
    ] = None,
    sensors: Annotated[str, typer.Option(help="Comma-separated sensor ids (default: all).")] = "",
    eval_start: Annotated[str | None, typer.Option(help="Recent evaluation data from.")] = None,
    eval_end: Annotated[str | None, typer.Option(help="Recent evaluation data until.")] = None,
    model_version: Annotated[
        str,
        typer.Option(help="Version to evaluate/promote when train is skipped (default: champion)."),
    ] = "",
    tune_count: Annotated[
        int | None, typer.Option(help="Tuning trials (default: the setting).")
    ] = None,
    skip: Annotated[
        str,
        typer.Option(
            help="Comma-separated steps to skip: preprocess, tune, train, evaluate, promote."
        ),
    ] = "",
    request_id: Annotated[str, typer.Option(help="The retrain request this run answers.")] = "",
) -> None:
    """Run the pipeline on this machine with KFP's local runner, step by step."""
    from driftline.training.local_run import PipelineParams, run_locally

    settings = _settings()
    params = PipelineParams(
        tag=tag,
        data_start=_time(data_start),
        data_end=_time(data_end),
        sensors=[s.strip() for s in sensors.split(",") if s.strip()],
        eval_start=_time(eval_start),
        eval_end=_time(eval_end),
        model_version=model_version,
        tune_count=tune_count or settings.tune_samples,
        request_id=request_id,
        skip=frozenset(s.strip() for s in skip.split(",") if s.strip()),
    )
    try:
        params.arguments()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    version = run_locally(settings, params)
    typer.echo(f"pipeline finished: model {settings.model_name} v{version}")


@pipeline_app.command("compile")
def pipeline_compile(
    output: Annotated[Path | None, typer.Option(help="Where to write the spec.")] = None,
) -> None:
    """Compile the pipeline for a KFP cluster (images from DRIFTLINE_IMAGE_REGISTRY and
    DRIFTLINE_IMAGE_TAG; credentials from the Kubernetes Secret driftline-pipeline)."""
    from driftline.pipelines.retrain import COMPILED, compile_pipeline, component_image

    settings = settings_or_exit()
    path = compile_pipeline(
        output or COMPILED, component_image(settings.image_registry, settings.image_tag)
    )
    typer.echo(f"compiled {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
