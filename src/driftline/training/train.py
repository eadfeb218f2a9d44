"""Train step: fit XGBoost on a dataset version and register it in MLflow."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from driftline.profile import load_profile
from driftline.settings import Settings
from driftline.training import modeling
from driftline.training.registry import REFERENCE_ARTIFACT
from driftline.training.scoring import classification_metrics, labelled


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    run_id: str
    model_name: str
    model_version: str
    metrics: dict[str, float]
    data_tag: str
    params: dict[str, Any]


def best_params(settings: Settings, tag: str) -> dict[str, Any]:
    """The tuned parameters saved for ``tag``, else the defaults."""
    from driftline.training.datarepo import DataRepo

    repo = DataRepo(settings)
    if f"{tag}-params" in repo.tags():
        return {**modeling.DEFAULT_PARAMS, **repo.load_params(tag)}
    return dict(modeling.DEFAULT_PARAMS)


def train(settings: Settings, tag: str, run_name: str | None = None) -> TrainResult:
    """Fit on each sensor's earlier rows, score on its latest rows, log and register the model."""
    import mlflow
    import mlflow.xgboost
    import xgboost

    from driftline.training.datarepo import DataRepo
    from driftline.training.plots import importance_figure, pr_curve_figure

    features = load_profile(settings.profile_path).features
    columns = modeling.input_columns(features)
    repo = DataRepo(settings)
    frame = labelled(repo.load_dataset(tag))
    fit_rows, held_rows = modeling.time_split(frame)
    if fit_rows.empty or held_rows.empty:
        raise ValueError(f"dataset {tag} has too few labelled rows to train and score")
    params = best_params(settings, tag)
    x_fit = modeling.model_inputs(fit_rows, features)
    x_held = modeling.model_inputs(held_rows, features)
    y_held = modeling.labels(held_rows)
    model = modeling.fit_model(x_fit, modeling.labels(fit_rows), params)
    scores = modeling.anomaly_scores(model, x_held)
    metrics = classification_metrics(y_held, scores)

    modeling.use_mlflow(settings)
    client = modeling.mlflow_client(settings)
    experiment_id = modeling.ensure_experiment(settings, client)
    tags = {
        "data_tag": tag,
        "dvc_md5": repo.dataset_hash(tag),
        "git_commit": modeling.code_commit(),
        "rows_train": str(len(fit_rows)),
        "rows_heldout": str(len(held_rows)),
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            reference = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            fit_rows[features].reset_index(drop=True).to_parquet(reference, index=False)
            mlflow.log_artifact(str(reference), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
        pr_curve = pr_curve_figure(y_held, scores, "held-out PR curve")
        mlflow.log_figure(pr_curve, "plots/pr_curve.png")
        mlflow.log_figure(
            importance_figure(columns, model.feature_importances_), "plots/feature_importance.png"
        )
        info = mlflow.xgboost.log_model(
            model,
            name="model",
            registered_model_name=settings.model_name,
            input_example=x_held.head(5),
            # Stated, not inferred: inference re-loads the model in a subprocess (seconds).
            pip_requirements=[f"xgboost=={xgboost.__version__}", "pandas", "numpy"],
        )
    version = str(info.registered_model_version)
    for key in ("data_tag", "dvc_md5", "git_commit"):
        client.set_model_version_tag(settings.model_name, version, key, tags[key])
    return TrainResult(
        run_id=run.info.run_id,
        model_name=settings.model_name,
        model_version=version,
        metrics=metrics,
        data_tag=tag,
        params=params,
    )
