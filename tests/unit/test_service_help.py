"""A service run as a script (its image's entry point) explains itself on --help, refuses
arguments it does not take, and says which setting to change when its port is taken, rather
than starting regardless or ending in a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Two: each is a process importing its service, and the code under test is shared.
SERVICES = ["ingest", "drift"]


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "services" / name / "service.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("name", SERVICES)
def test_help_says_what_the_service_does_and_where_settings_come_from(name: str) -> None:
    result = run_script(name, "--help")
    assert result.returncode == 0, result.stderr
    docstring = (ROOT / "services" / name / "service.py").read_text().split('"""')[1]
    assert docstring.splitlines()[0].strip() in result.stdout
    assert "driftline settings" in result.stdout


def test_an_argument_it_does_not_take_is_an_error() -> None:
    result = run_script("ingest", "--batch-size", "10")
    assert result.returncode == 2
    assert "unrecognized arguments: --batch-size 10" in result.stderr


def test_a_metrics_port_already_taken_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(
            "ingest",
            env={"DRIFTLINE_METRICS_HOST": "127.0.0.1", "DRIFTLINE_METRICS_PORT": str(port)},
        )
    assert result.returncode == 1
    assert f"ingest: cannot serve /metrics on 127.0.0.1:{port}: " in result.stderr
    assert "DRIFTLINE_METRICS_PORT sets another port" in result.stderr
    assert "Traceback" not in result.stderr
