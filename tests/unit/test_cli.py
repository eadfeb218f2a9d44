"""Every command of the driftline CLI explains itself."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from driftline.cli.main import app

COMMANDS = [
    [],
    ["up"],
    ["broker"],
    ["ingest"],
    ["validator"],
    ["drift"],
    ["retrain-trigger"],
    ["simulate"],
    ["settings"],
    ["reference"],
    ["reference", "build"],
    ["pipeline"],
    ["pipeline", "run"],
    ["pipeline", "compile"],
    ["step"],
    ["step", "preprocess"],
    ["step", "tune"],
    ["step", "train"],
    ["step", "evaluate"],
    ["step", "promote"],
    ["serve"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "driftline")
def test_help(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    # A sentence of its own, not just the usage line.
    assert len(result.output.split("Options")[0].split("\n", 2)[-1].strip()) > 20


def test_settings_lists_every_variable_with_its_meaning() -> None:
    result = CliRunner().invoke(app, ["settings"], env={"DRIFTLINE_DRIFT_WINDOW_SIZE": "123"})
    assert result.exit_code == 0
    assert "KAFKA_BOOTSTRAP_SERVERS=" in result.output
    assert "DRIFTLINE_DRIFT_WINDOW_SIZE=123" in result.output
    assert "Readings per sensor window." in result.output


def test_simulate_refuses_an_endless_run_as_fast_as_possible() -> None:
    result = CliRunner().invoke(app, ["simulate", "--rate", "0"])
    assert result.exit_code != 0
    assert "--count" in result.output
