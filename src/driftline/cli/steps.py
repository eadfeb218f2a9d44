"""``driftline step ...``: each pipeline step on its own, as the KFP components run it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel

from driftline.cli.common import command_settings, time_option

if TYPE_CHECKING:
    from driftline.core.settings import Settings

step_app = typer.Typer(
    help="Run one step of the retraining pipeline on its own and print its result (JSON).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

Tag = Annotated[str, typer.Option(help="Dataset version tag (a git tag in the data repository).")]
Start = Annotated[str | None, typer.Option(help="From this time (ISO 8601, UTC).")]
End = Annotated[str | None, typer.Option(help="Until this time (ISO 8601, UTC).")]
ModelName = Annotated[str | None, typer.Option(help="Registered model (default: the setting).")]
ModelVersion = Annotated[str, typer.Option(help="Registered model version.")]
Trials = Annotated[
    int | None, typer.Option(help="Most trials (default: until the time budget is spent).")
]
RunName = Annotated[str | None, typer.Option(help="MLflow run name (default: the tag).")]


def _print(result: BaseModel) -> None:
    typer.echo(result.model_dump_json(indent=2))


@step_app.command()
def preprocess(
    tag: Tag,
    start: Start = None,
    end: End = None,
    sensors: Annotated[str, typer.Option(help="Comma-separated sensor ids (default: all).")] = "",
) -> None:
    """Raw store -> schema-checked, featured dataset, versioned with DVC under --tag."""
    from driftline.training.preprocess import preprocess as step

    chosen = [s.strip() for s in sensors.split(",") if s.strip()] or None
    _print(step(command_settings(), tag, time_option(start), time_option(end), chosen))


@step_app.command()
def tune(tag: Tag, count: Trials = None) -> None:
    """AutoML search of model families, feature windows, parameters and threshold on dataset
    --tag, within DRIFTLINE_AUTOML_BUDGET_SECONDS; saves the pick with the data."""
    from driftline.training.tune import tune as step

    _print(step(command_settings(), tag, count))


@step_app.command()
def train(tag: Tag, run_name: RunName = None) -> None:
    """The anomaly model of dataset --tag (its AutoML pick, else a family's defaults) with
    its per-sensor baselines; MLflow run and registered version."""
    from driftline.training.train import train as step

    _print(step(command_settings(), tag, run_name))


def _judge_version_command(name: str, summary: str) -> None:
    """Register ``driftline step <name>``: the step of ``driftline.training.<name>`` that
    judges ``--model-version`` on the data between ``--start`` and ``--end``."""

    def command(
        model_version: ModelVersion,
        model_name: ModelName = None,
        start: Start = None,
        end: End = None,
    ) -> None:
        step: Callable[[Settings, str, str, datetime | None, datetime | None], BaseModel]
        step = getattr(importlib.import_module(f"driftline.training.{name}"), name)
        settings = command_settings()
        model = model_name or settings.model_name
        _print(step(settings, model, model_version, time_option(start), time_option(end)))

    command.__doc__ = summary
    step_app.command(name)(command)


_judge_version_command(
    "evaluate", "Score a registered version on recent raw data; writes the Evidently report."
)
_judge_version_command(
    "promote", "Champion/challenger on recent data; promotes --model-version only if it wins."
)


@step_app.command()
def bootstrap(
    data: Annotated[
        Path, typer.Option(help="Parquet of labelled readings: sensor_id, ts, label, values.")
    ],
    mlflow_template: Annotated[
        Path | None,
        typer.Option(
            help="An empty SQLite MLflow store to start a new local store from (default: one "
            "made once per machine and MLflow version in the user's cache directory)."
        ),
    ] = None,
) -> None:
    """A first champion: train on --data, version, register and promote it (as the demo does
    before its pumps start). A registry that has a champion already is left as it is."""
    import pandas as pd

    from driftline.core.profile import load_profile
    from driftline.platform.demo_bootstrap import bootstrap_champion
    from driftline.platform.mlflow_store import start_mlflow_store

    settings = command_settings()
    start_mlflow_store(settings, mlflow_template)
    features = load_profile(settings.profile_path).features
    version = bootstrap_champion(settings, features, pd.read_parquet(data))
    typer.echo(f'{{"model_version": "{version}"}}')
