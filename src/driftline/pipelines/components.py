"""The pipeline's components: thin KFP wrappers around driftline.training's step functions.

KFP ships each function's source to its container (or subprocess) on its own, so every
import is inside the function and the settings come from the environment (on a cluster:
from Kubernetes Secrets, see retrain.py). No ``from __future__ import annotations`` here: KFP
reads the annotations as types.
"""

from kfp.dsl import HTML, Markdown, Metrics, Output


def preprocess_step(tag: str, data_start: str, data_end: str, sensors: str) -> str:
    """Raw store -> validated, featured dataset, versioned with DVC under ``tag``."""
    from driftline.training.kfp_support import parse_sensors, parse_time, run_step
    from driftline.training.preprocess import preprocess

    return run_step(
        "preprocess",
        preprocess,
        tag,
        parse_time(data_start),
        parse_time(data_end),
        parse_sensors(sensors),
    ).tag


def existing_dataset_step(tag: str) -> str:
    """Instead of preprocess: use the dataset already versioned under ``tag``."""
    from driftline.core.settings import load_settings
    from driftline.training.datarepo import DataRepo
    from driftline.training.kfp_support import step_log

    with step_log("existing dataset") as log:
        log(f"dataset {tag}: DVC md5 {DataRepo(load_settings()).dataset_hash(tag)}")
    return tag


def tune_step(tag: str, count: int) -> str:
    """AutoML search (families, windows, parameters, threshold) on the dataset ``tag``."""
    from driftline.training.kfp_support import run_step
    from driftline.training.tune import tune

    return run_step("tune", tune, tag, count).tag


def skip_tuning_step(tag: str) -> str:
    """Instead of tune: train the pick saved for ``tag`` (or a family's defaults)."""
    return tag


def train_step(tag: str, run_name: str) -> str:
    """The anomaly model of ``tag`` (its AutoML pick, else a family's defaults) with its
    per-sensor baselines, tracked and registered in MLflow."""
    from driftline.training.kfp_support import run_step
    from driftline.training.train import train

    return run_step("train", train, tag, run_name).model_version


def existing_model_step(model_version: str) -> str:
    """Instead of train: evaluate or promote a version already registered."""
    from driftline.core.settings import load_settings
    from driftline.training.kfp_support import resolve_version, step_log

    with step_log("existing model") as log:
        version = resolve_version(load_settings(), model_version)
        log(f"using model version {version}")
    return version


def evaluate_step(
    model_version: str,
    eval_start: str,
    eval_end: str,
    report: Output[HTML],
    summary: Output[Markdown],
    metrics: Output[Metrics],
) -> str:
    """Scores the model on recent raw data; Evidently drift and quality report as artifacts."""
    import shutil

    from driftline.training.evaluate import evaluate
    from driftline.training.kfp_support import judge_version

    result = judge_version("evaluate", evaluate, model_version, eval_start, eval_end)
    shutil.copyfile(result.html_path, report.path)
    shutil.copyfile(result.markdown_path, summary.path)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    return model_version


def skip_evaluation_step(model_version: str) -> str:
    return model_version


def promote_step(model_version: str, eval_start: str, eval_end: str, request_id: str) -> str:
    """Champion/challenger on the same recent data; moves the alias only if the challenger wins."""
    from driftline.training.kfp_support import judge_version
    from driftline.training.promote import promote

    result = judge_version(
        "promote", promote, model_version, eval_start, eval_end, request_id or None
    )
    return "promoted" if result.promoted else "kept champion"
