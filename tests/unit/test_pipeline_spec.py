"""The committed pipeline spec is what the code compiles to."""

from __future__ import annotations

from pathlib import Path

import yaml

from driftline.training.local_run import STEPS, PipelineParams
from pipelines.retrain import COMPILED, compile_pipeline


def test_compiled_pipeline_is_up_to_date(tmp_path: Path) -> None:
    fresh = compile_pipeline(tmp_path / "retrain.yaml")
    assert COMPILED.read_text() == fresh.read_text(), (
        "deploy/kfp/retrain.yaml is out of date: run 'driftline pipeline compile'"
    )


def test_every_step_is_chosen_by_a_parameter_and_reads_secrets() -> None:
    spec = yaml.safe_load(COMPILED.read_text().split("\n---\n")[0])
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {f"run_{s}" for s in STEPS} <= set(params)
    conditions = [
        task.get("triggerPolicy", {}).get("condition", "")
        for component in spec["components"].values()
        for task in component.get("dag", {}).get("tasks", {}).values()
    ] + [
        t.get("triggerPolicy", {}).get("condition", "")
        for t in spec["root"]["dag"]["tasks"].values()
    ]
    for step in STEPS:
        assert any(f"run_{step}" in c for c in conditions), step
    platform = COMPILED.read_text().split("\n---\n")[1]
    assert "secretAsEnv" in platform and "driftline-pipeline" in platform


def test_skipping_an_unknown_step_is_refused() -> None:
    try:
        PipelineParams(tag="t", skip=frozenset({"deploy"})).arguments()
    except ValueError as exc:
        assert "deploy" in str(exc)
    else:
        raise AssertionError("an unknown step was accepted")
