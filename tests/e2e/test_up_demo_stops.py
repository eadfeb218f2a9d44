"""`driftline up --demo` when a stage of the loop cannot happen: it ends with the reason and a
non-zero exit. Its own module, so it runs beside the two full demos of test_up_demo.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.demo_runs import processes_using, run_demo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_a_stage_that_cannot_happen_ends_the_demo_with_the_reason(tmp_path: Path) -> None:
    # Without preprocess the pipeline looks for a dataset the drift episode never got: it fails.
    result = run_demo(tmp_path / "data", {"DRIFTLINE_RETRAIN_SKIP_STEPS": "tune,preprocess"})
    assert result.returncode == 3, (result.stdout[-3000:], result.stderr[-3000:])
    out = result.stdout
    assert "stopped: the promotion of a retrained model did not happen" in out
    assert "(the retraining pipeline failed)" in out
    assert "The last lines of" in out and "pipeline-" in out and "no tag" in out
    summary = json.loads(
        (tmp_path / "data" / "demo-runs" / "latest" / "demo-summary.json").read_text()
    )
    assert summary["served_retrained_version"] is None and summary["trigger_fired"] == 1
    assert processes_using(Path(summary["run_dir"])) == []
