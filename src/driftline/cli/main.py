"""The ``driftline`` command line. Every command has ``--help``.

The one app: its sub-apps and the modules that add commands to it are listed here, in the
order ``driftline --help`` shows them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.cli import ops, platform, services
from driftline.cli.baseline import baseline_app
from driftline.cli.common import command_settings
from driftline.cli.pipeline import pipeline_app
from driftline.cli.steps import step_app
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
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(step_app, name="step")
ops.install(app)  # --version, doctor
app.add_typer(baseline_app, name="baseline")
services.install(app)  # broker, ingest, validator, drift, retrain-trigger, labeler, mqtt-gateway
app.add_typer(labels_app, name="labels")


@app.command("settings")
def show_settings() -> None:
    """List every setting: its environment variable, current value and meaning."""
    settings = settings_or_exit()
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        typer.echo(f"{env_name(name)}={redact(str(value)) if value is not None else ''}")
        if field.description:
            typer.echo(f"    {field.description}")


platform.install(app)  # simulate, up, serve


@reference_app.command("build")
def reference_build(
    sources: Annotated[list[Path], typer.Argument(help="CSV (SKAB ';' or ',') or Parquet files.")],
    out: Annotated[Path | None, typer.Option(help="Output Parquet (default: the setting).")] = None,
) -> None:
    """Build the baseline reference from files with one column per measurement."""
    from driftline.core.profile import load_profile
    from driftline.drift.reference import build_reference

    settings = command_settings()
    profile = load_profile(settings.profile_path)
    target = out or settings.resolved_reference_path
    ref = build_reference(sources, profile.features, target)
    typer.echo(f"reference {ref.reference_id}: {len(ref)} rows x {len(ref.features)} -> {target}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
