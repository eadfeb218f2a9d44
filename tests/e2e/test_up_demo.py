"""The README's first command, headless: `driftline up --demo` runs the loop and cleans up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from driftline.broker import free_port

pytestmark = pytest.mark.integration


def processes_using(data_dir: Path) -> list[int]:
    """PIDs whose environment points at ``data_dir`` (the platform's children inherit it)."""
    marker = f"DRIFTLINE_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def scrape(port: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:  # not listening yet
            text = ""
        if "driftline_batch_duration_seconds_bucket" in text:  # it has handled a batch
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"no metrics on port {port}")
        time.sleep(0.5)


def test_up_demo_detects_the_injected_drift_and_leaves_nothing_behind(tmp_path):
    data_dir = tmp_path / "data"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "DRIFTLINE_", "DATABASE_"))
    }
    env["DRIFTLINE_DATA_DIR"] = str(data_dir)
    base_port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftline.cli",
            "up",
            "--demo",
            "--headless",
            "--metrics-base-port",
            str(base_port),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Demo summary" in out
    fired = re.search(r"trigger: (\d+) fired, (\d+) held", out)
    assert fired and int(fired.group(1)) == 1
    assert re.search(r"drift onset -> retraining triggered: [\d.]+ s", out)
    sent = int(re.search(r"readings sent: ([\d,]+)", out).group(1).replace(",", ""))
    stored = int(re.search(r"stored: ([\d,]+)", out).group(1).replace(",", ""))
    assert stored == sent
    assert processes_using(data_dir) == [], "children outlived driftline up"
    assert not (data_dir / "broker.json").exists()
