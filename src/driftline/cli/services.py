"""Commands that run one part of the platform until stopped: the embedded broker, each
service (ingest, validator, drift, retrain-trigger, labeler) and the MQTT gateway."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Annotated

import typer

from driftline.cli.common import command_settings

SERVICES = ("ingest", "validator", "drift", "retrain-trigger", "labeler")


def broker(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 9092,
) -> None:
    """Run the embedded Kafka-compatible broker (Tansu) until Ctrl-C.

    Its address is written to <data_dir>/broker.json, where the other commands find it when
    KAFKA_BOOTSTRAP_SERVERS is not set. Data lives in memory only.
    """
    from driftline.platform.broker import EmbeddedBroker
    from driftline.streaming.kafka import record_embedded_broker

    settings = command_settings()
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


def service_command(name: str) -> Callable[[], None]:
    """The command that runs service ``name`` until it is stopped."""

    def command() -> None:
        from driftline.platform.services import load_service
        from driftline.streaming.service_main import service_main

        service_main(name, load_service(name).run, command_settings())

    command.__doc__ = {
        "ingest": "Land every raw reading in the raw store (idempotent, at-least-once).",
        "validator": "Validate raw readings in micro-batches; valid on, invalid to the DLQ.",
        "drift": "Compare per-sensor windows of valid readings with the reference data.",
        "retrain-trigger": "Decide when drift is real and launch retraining.",
        "labeler": "Label Studio tasks from the stream, annotations back as labels (continuous).",
    }[name]
    return command


def mqtt_gateway() -> None:
    """Forward MQTT readings (DRIFTLINE_MQTT_URL) to the raw topic, at-least-once."""
    from driftline.platform.services import load_service
    from driftline.streaming.service_main import service_main

    service_main("mqtt-gateway", load_service("mqtt-gateway").run, command_settings())


def install(app: typer.Typer) -> None:
    """Add the broker, the services and the MQTT gateway to ``app``."""
    app.command()(broker)
    for name in SERVICES:
        app.command(name=name)(service_command(name))
    app.command("mqtt-gateway")(mqtt_gateway)
