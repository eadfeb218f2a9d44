"""Runs the retraining pipeline with KFP's local runner (a subprocess per step, this venv)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime

from driftline.core.settings import Settings

STEPS = ("preprocess", "tune", "train", "evaluate", "promote")


@dataclass(frozen=True)
class PipelineParams:
    tag: str
    data_start: datetime | None = None
    data_end: datetime | None = None
    sensors: list[str] = field(default_factory=list)
    eval_start: datetime | None = None
    eval_end: datetime | None = None
    model_version: str = ""
    tune_count: int = 8
    run_name: str = ""
    request_id: str = ""
    skip: frozenset[str] = frozenset()

    def arguments(self) -> dict[str, object]:
        """The pipeline's parameters, as KFP takes them (strings, '' for none)."""

        def iso(ts: datetime | None) -> str:
            return ts.isoformat() if ts else ""

        unknown = self.skip - set(STEPS)
        if unknown:
            raise ValueError(f"unknown steps {sorted(unknown)}; steps are {', '.join(STEPS)}")
        return {
            "tag": self.tag,
            "data_start": iso(self.data_start),
            "data_end": iso(self.data_end),
            "sensors": ",".join(self.sensors),
            "eval_start": iso(self.eval_start),
            "eval_end": iso(self.eval_end),
            "model_version": self.model_version,
            "tune_count": self.tune_count,
            "run_name": self.run_name or self.tag,
            "request_id": self.request_id,
            **{f"run_{step}": step not in self.skip for step in STEPS},
        }


def run_locally(settings: Settings, params: PipelineParams) -> str:
    """Run the pipeline here with KFP's SubprocessRunner; returns the model version it ends with.

    The steps read their settings from the environment, so this process's environment is set
    from ``settings`` first: run it in a process of its own (``driftline pipeline run``).
    """
    from kfp import local

    from driftline.pipelines.retrain import build_pipeline

    os.environ.update(settings.to_env())
    root = settings.data_dir.resolve() / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    task = build_pipeline(image="local")(**params.arguments())
    return str(task.output)
