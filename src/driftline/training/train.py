"""Train step: fit the anomaly model of a dataset version and register it in MLflow.

The model is what the tune step picked for this dataset (family, feature recipe, parameters,
threshold), else a family's defaults (``anomaly_data.chosen_spec``). It judges each sensor
against that sensor's baseline; the baselines are versioned with the dataset and logged with
the model, so serving scores with the very same ones.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.training import modeling
from driftline.training.registry import REFERENCE_ARTIFACT, REFERENCE_BASELINES_ARTIFACT
from driftline.training.scoring import classification_metrics


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    run_id: str
    model_name: str
    model_version: str
    metrics: dict[str, float]
    data_tag: str
    params: dict[str, Any]
    family: str = ""
    baselines_version: str = ""

    def summary(self) -> str:
        return (
            f"{self.model_name} v{self.model_version} ({self.family}, run {self.run_id}): "
            f"{self.metrics}"
        )


def saved_params(settings: Settings, tag: str) -> dict[str, Any] | None:
    """What the tune step saved for ``tag``, or None."""
    from driftline.training.datarepo import DataRepo

    repo = DataRepo(settings)
    if f"{tag}-params" in repo.tags():
        return repo.load_params(tag)
    return None


def versioned_baselines(
    settings: Settings, tag: str, frame: pd.DataFrame, measurements: list[str]
) -> dict[str, Any]:
    """The baselines versioned with dataset ``tag``: saved with it before, else made now (the
    store's or each sensor's first readings) and saved."""
    from driftline.training.anomaly_data import sensor_baselines
    from driftline.training.datarepo import DataRepo

    repo = DataRepo(settings)
    saved = repo.load_baselines(tag)
    if saved is not None:
        return {b.sensor_id: b for b in saved}
    baselines = sensor_baselines(settings, frame, measurements)
    if not baselines:
        raise ValueError(
            f"dataset {tag} has no sensor with {settings.baseline_readings} valid readings "
            "for a baseline, and no baseline set (driftline baseline set)"
        )
    repo.save_baselines(tag, list(baselines.values()))
    return baselines


def _split(recording: Any, holdout: float = modeling.HOLDOUT_FRACTION) -> tuple[Any, int]:
    """The recording's first rows to fit on, and where its held-out last rows start."""
    n = len(recording.values)
    cut = max(int(np.floor(n * (1.0 - holdout))), recording.scored_from + 1)
    cut = min(cut, n)
    fit = dataclasses.replace(
        recording, values=recording.values[:cut], labels=recording.labels[:cut]
    )
    return fit, cut


def train(settings: Settings, tag: str, run_name: str | None = None) -> TrainResult:
    """Fit on each sensor's earlier rows, score its latest rows, log and register the model."""
    import mlflow
    import xgboost

    from driftline.anomaly.baseline_store import BaselineStore
    from driftline.anomaly.bundle import ModelBundle, alarm_probability
    from driftline.anomaly.model import AnomalyModel
    from driftline.anomaly.registered import log_bundle
    from driftline.anomaly.tracking import spec_params
    from driftline.training.anomaly_data import chosen_spec, recordings
    from driftline.training.datarepo import DataRepo
    from driftline.training.plots import importance_figure, pr_curve_figure

    measurements = load_profile(settings.profile_path).features
    repo = DataRepo(settings)
    frame = repo.load_dataset(tag)
    baselines = versioned_baselines(settings, tag, frame, measurements)
    records = recordings(frame, baselines, measurements)
    spec, origin = chosen_spec(saved_params(settings, tag), frame, measurements)
    splits = [_split(r) for r in records]
    fit_records = [f for f, _ in splits]
    model = AnomalyModel.fit(spec, fit_records)

    y_held, scores = [], []
    for record, (_, cut) in zip(records, splits, strict=True):
        score = model.score(record.baseline, record.values)[cut:]
        rows = frame.loc[frame["sensor_id"] == record.name].sort_values("ts", kind="mergesort")
        known = np.isfinite(rows["label"].to_numpy(dtype="float64"))[cut:]
        if record.labels is None:
            raise ValueError(f"recording {record.name} has no labels to evaluate on")
        y_held.append(record.labels[cut:][known])
        scores.append(alarm_probability(score[known], spec.threshold))
    y = np.concatenate(y_held) if y_held else np.empty(0)
    held_scores = np.concatenate(scores) if scores else np.empty(0)
    if len(y) == 0:
        raise ValueError(f"dataset {tag} has too few labelled rows to train and score")
    metrics = classification_metrics(y, held_scores)
    bundle = ModelBundle(model, baselines, tuple(measurements))

    modeling.use_mlflow(settings)
    client = modeling.mlflow_client(settings)
    experiment_id = modeling.ensure_experiment(settings, client)
    rows_train = sum(len(f.values) for f in fit_records)
    tags = {
        "data_tag": tag,
        "dvc_md5": repo.dataset_hash(tag),
        "git_commit": modeling.code_commit(),
        "rows_train": str(rows_train),
        "rows_heldout": str(len(y)),
        "family": spec.family,
        "spec_origin": origin,
        "baselines_version": bundle.baselines_version,
    }
    params = spec_params(spec)
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(
            {s: b.version for s, b in sorted(baselines.items())}, "baselines/versions.json"
        )
        # The drift service's reference: each row with its sensor, and the bundle's baselines
        # beside it, so it can take each sensor relative to its own baseline.
        fit_rows = pd.concat(
            [
                pd.DataFrame(f.values, columns=measurements).assign(sensor_id=f.name)
                for f in fit_records
            ],
            ignore_index=True,
        )
        with tempfile.TemporaryDirectory() as tmp:
            reference = Path(tmp) / Path(REFERENCE_ARTIFACT).name
            fit_rows.to_parquet(reference, index=False)
            mlflow.log_artifact(str(reference), artifact_path=str(Path(REFERENCE_ARTIFACT).parent))
            store = BaselineStore(Path(tmp) / "baselines")
            for baseline in baselines.values():
                store.save(baseline)
            mlflow.log_artifacts(str(store.directory), artifact_path=REFERENCE_BASELINES_ARTIFACT)
        mlflow.log_figure(
            pr_curve_figure(y, held_scores, "held-out PR curve"), "plots/pr_curve.png"
        )
        if model.booster is not None:
            columns = spec.recipe.columns(tuple(measurements))
            mlflow.log_figure(
                importance_figure(columns, model.booster.feature_importances_),
                "plots/feature_importance.png",
            )
        info = log_bundle(
            bundle,
            settings.model_name,
            [f"xgboost=={xgboost.__version__}", "pandas", "numpy", "scipy", "pydantic"],
        )
    version = str(info.registered_model_version)
    for key in ("data_tag", "dvc_md5", "git_commit", "family", "baselines_version"):
        client.set_model_version_tag(settings.model_name, version, key, tags[key])
    return TrainResult(
        run_id=run.info.run_id,
        model_name=settings.model_name,
        model_version=version,
        metrics=metrics,
        data_tag=tag,
        params=params,
        family=spec.family,
        baselines_version=bundle.baselines_version,
    )
