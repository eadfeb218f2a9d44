"""Bandit finds nothing in the code that ships: every exception to its checks is a skip in
pyproject.toml's [tool.bandit] or a `# nosec BXXX  # reason` at its line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ["src", "services", "serving"]


def test_bandit_finds_nothing() -> None:
    bandit = Path(sys.executable).with_name("bandit")
    done = subprocess.run(
        [str(bandit), "-c", "pyproject.toml", "-r", *SCANNED, "-f", "json", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(done.stdout)
    assert report["errors"] == [], report["errors"]
    found = [
        f"{r['filename']}:{r['line_number']} {r['test_id']} ({r['issue_severity']}): "
        f"{r['issue_text']}"
        for r in report["results"]
    ]
    assert found == [], "\n".join(found)
    assert done.returncode == 0, done.stderr[-2000:]
    scanned = report["metrics"]["_totals"]["loc"]
    assert scanned > 1000, "bandit scanned (almost) nothing"
