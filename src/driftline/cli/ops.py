"""Operator commands of the command line: ``--version`` and ``driftline doctor``.

``install`` adds them to the app in main.py, which stays the one place their order is set.
"""

from __future__ import annotations

from typing import Annotated

import typer

from driftline import __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"driftline {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Driftline: streaming validation, drift detection and retraining for sensor fleets."""


def doctor() -> None:
    """Check every dependency the settings name (Kafka, the database, MLflow, serving, Label
    Studio when set) and print whether each is reachable from here. Exits 1 if one is not."""
    from driftline.cli.doctor import render, run_checks
    from driftline.core.settings_errors import settings_or_exit

    results = run_checks(settings_or_exit())
    typer.echo(render(results))
    if any(r.reachable == "no" for r in results):
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    app.callback()(_root)
    app.command("doctor")(doctor)
