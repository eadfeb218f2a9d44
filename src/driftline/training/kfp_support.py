"""Glue between KFP components and the step functions: parameter parsing, step logs, and
running a step with the settings of the environment.

KFP passes parameters as strings; an empty string means "not given".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from driftline.core.settings import Settings, load_settings
from driftline.validation.parsing import parse_timestamp


def parse_time(value: str) -> datetime | None:
    if not value:
        return None
    ts = parse_timestamp(value)
    if ts is None:
        raise ValueError(f"not an ISO 8601 time: {value!r}")
    return ts


def parse_sensors(value: str) -> list[str] | None:
    sensors = [s.strip() for s in value.split(",") if s.strip()]
    return sensors or None


@contextlib.contextmanager
def step_log(step: str) -> Iterator[Callable[[str], None]]:
    """Prints '[driftline] <step> ...' lines with the step's duration (shown per KFP task)."""
    started = time.monotonic()
    print(f"[driftline] {step}: started", flush=True)

    def log(message: str) -> None:
        print(f"[driftline] {step}: {message}", flush=True)

    yield log
    print(f"[driftline] {step}: done in {time.monotonic() - started:.1f}s", flush=True)


class StepResult(Protocol):
    def summary(self) -> str:
        """One line for the step's log."""
        ...


P = ParamSpec("P")
R = TypeVar("R", bound=StepResult)


def run_step(
    step: str, run: Callable[Concatenate[Settings, P], R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """``run(settings, *args)`` with the settings of the environment, between the step's log
    lines, its result's summary logged."""
    with step_log(step) as log:
        result = run(load_settings(), *args, **kwargs)
        log(result.summary())
    return result


def judge_version(
    step: str,
    judge: Callable[Concatenate[Settings, str, str, datetime | None, datetime | None, P], R],
    model_version: str,
    start: str,
    end: str,
    *args: P.args,
    **kwargs: P.kwargs,
) -> R:
    """``run_step`` for a step that judges ``model_version`` of the settings' model on the data
    between ``start`` and ``end`` (evaluate, promote)."""
    settings = load_settings()
    with step_log(step) as log:
        result = judge(
            settings,
            settings.model_name,
            model_version,
            parse_time(start),
            parse_time(end),
            *args,
            **kwargs,
        )
        log(result.summary())
    return result


def resolve_version(settings: Settings, version: str) -> str:
    """``version`` if it is registered, or the champion's version when it is empty."""
    from driftline.training.modeling import mlflow_client

    client = mlflow_client(settings)
    if version:
        return str(client.get_model_version(settings.model_name, version).version)
    return str(client.get_model_version_by_alias(settings.model_name, "champion").version)
