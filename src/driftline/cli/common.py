"""Helpers every module of the command line shares: the settings of a command, time options."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from driftline.core.settings import Settings


def command_settings() -> Settings:
    """The settings of a command that runs something: read (exit 2 with the reason if they are
    wrong), logging configured, the data directory made."""
    from driftline.core.logs import configure_logging
    from driftline.core.settings_errors import settings_or_exit

    settings = settings_or_exit()
    configure_logging(settings.log_level, "driftline")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


def time_option(value: str | None) -> datetime | None:
    """An ISO 8601 time option (empty: none); a bad one is a usage error."""
    from driftline.training.kfp_support import parse_time

    try:
        return parse_time(value or "")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
