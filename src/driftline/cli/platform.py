"""Commands that run the platform on this machine: feed it (``simulate``), run all of it
(``up``), serve the champion model (``serve``)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from driftline.cli.common import command_settings


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

    settings = command_settings()
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
    from driftline.platform.up import DemoOptions, run_platform

    options = DemoOptions(sensors=sensors, rate=rate, drift_at=drift_at) if demo else None
    raise typer.Exit(
        run_platform(
            command_settings(),
            options,
            duration=duration,
            metrics_base_port=metrics_base_port,
            headless=headless,
        )
    )


def serve(
    port: Annotated[
        int | None, typer.Option(help="HTTP port (default: DRIFTLINE_SERVING_PORT, 3000).")
    ] = None,
) -> None:
    """Serve the MLflow champion with BentoML (serving/): predictions for readings, adaptive
    batching, input validation, and a swap when a new champion is promoted."""
    from driftline.serving.serve import serve as run_service

    settings = command_settings()
    raise typer.Exit(run_service(settings, port or settings.serving_port))


def install(app: typer.Typer) -> None:
    """Add ``simulate``, ``up`` and ``serve`` to ``app``."""
    app.command()(simulate)
    app.command()(up)
    app.command()(serve)
