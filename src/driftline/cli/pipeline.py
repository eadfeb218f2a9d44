"""``driftline pipeline ...``: the retraining pipeline, run here or compiled for a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftline.cli.common import command_settings, time_option
from driftline.core.settings_errors import settings_or_exit

pipeline_app = typer.Typer(
    help="The retraining pipeline (Kubeflow Pipelines): preprocess, tune, train, evaluate, promote."
)


@pipeline_app.command("run")
def pipeline_run(
    tag: Annotated[str, typer.Option(help="Dataset version tag (a git tag in the data repo).")],
    data_start: Annotated[
        str | None, typer.Option(help="Training data from (ISO 8601, UTC).")
    ] = None,
    data_end: Annotated[
        str | None, typer.Option(help="Training data until (ISO 8601, UTC).")
    ] = None,
    sensors: Annotated[str, typer.Option(help="Comma-separated sensor ids (default: all).")] = "",
    eval_start: Annotated[str | None, typer.Option(help="Recent evaluation data from.")] = None,
    eval_end: Annotated[str | None, typer.Option(help="Recent evaluation data until.")] = None,
    model_version: Annotated[
        str,
        typer.Option(help="Version to evaluate/promote when train is skipped (default: champion)."),
    ] = "",
    tune_count: Annotated[
        int | None, typer.Option(help="Tuning trials (default: the setting).")
    ] = None,
    skip: Annotated[
        str,
        typer.Option(
            help="Comma-separated steps to skip: preprocess, tune, train, evaluate, promote."
        ),
    ] = "",
    request_id: Annotated[str, typer.Option(help="The retrain request this run answers.")] = "",
) -> None:
    """Run the pipeline on this machine with KFP's local runner, step by step."""
    from driftline.training.local_run import PipelineParams, run_locally

    settings = command_settings()
    params = PipelineParams(
        tag=tag,
        data_start=time_option(data_start),
        data_end=time_option(data_end),
        sensors=[s.strip() for s in sensors.split(",") if s.strip()],
        eval_start=time_option(eval_start),
        eval_end=time_option(eval_end),
        model_version=model_version,
        tune_count=tune_count or settings.tune_samples,
        request_id=request_id,
        skip=frozenset(s.strip() for s in skip.split(",") if s.strip()),
    )
    try:
        params.arguments()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    version = run_locally(settings, params)
    typer.echo(f"pipeline finished: model {settings.model_name} v{version}")


@pipeline_app.command("compile")
def pipeline_compile(
    output: Annotated[Path | None, typer.Option(help="Where to write the spec.")] = None,
) -> None:
    """Compile the pipeline for a KFP cluster (images from DRIFTLINE_IMAGE_REGISTRY and
    DRIFTLINE_IMAGE_TAG; credentials from the Kubernetes Secret driftline-pipeline)."""
    from driftline.pipelines.retrain import COMPILED, compile_pipeline, component_image

    settings = settings_or_exit()
    path = compile_pipeline(
        output or COMPILED, component_image(settings.image_registry, settings.image_tag)
    )
    typer.echo(f"compiled {path}")
