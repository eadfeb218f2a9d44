"""What the model steps share: inputs, the time-ordered split, the XGBoost fit, MLflow set-up.

Heavy libraries (xgboost, mlflow) are imported inside the functions that need them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from driftline.core.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from xgboost import XGBClassifier

EXPERIMENT = "driftline-retraining"
HOLDOUT_FRACTION = 0.25

# Used when the data repository has no tuned parameters for a dataset.
DEFAULT_PARAMS: dict[str, Any] = {
    "max_depth": 4,
    "learning_rate": 0.1,
    "n_estimators": 200,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "min_child_weight": 1.0,
    "scale_pos_weight": 1.0,
}


def input_columns(features: list[str]) -> list[str]:
    """The model's input columns, as the data side defines them (one definition everywhere)."""
    from driftline.training.features import feature_columns

    return feature_columns(features)


def model_inputs(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    return frame[input_columns(features)].astype("float64")


def labels(frame: pd.DataFrame) -> np.ndarray:
    return (frame["label"].to_numpy(dtype="float64") == 1).astype("int64")


def time_split(
    frame: pd.DataFrame, holdout: float = HOLDOUT_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per sensor in ts order: the first rows train, the last ``holdout`` share is held out.

    Holding out each sensor's latest rows (not random rows) keeps neighbouring, nearly equal
    readings from landing on both sides of the split.
    """
    ordered = frame.sort_values(["sensor_id", "ts"], kind="stable")
    position = ordered.groupby("sensor_id", sort=False).cumcount()
    size = ordered.groupby("sensor_id", sort=False)["ts"].transform("size")
    held = position >= np.floor(size * (1.0 - holdout))
    return ordered[~held], ordered[held]


def xgb_params(params: dict[str, Any], n_jobs: int | None = None) -> dict[str, Any]:
    """XGBoost constructor arguments from tuned-or-default parameters."""
    out = {**DEFAULT_PARAMS, **params}
    out["max_depth"] = int(out["max_depth"])
    out["n_estimators"] = int(out["n_estimators"])
    return {
        **out,
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "n_jobs": n_jobs,
        "random_state": 0,
    }


def fit_model(
    x: pd.DataFrame | np.ndarray, y: np.ndarray, params: dict[str, Any], n_jobs: int | None = None
) -> XGBClassifier:
    from xgboost import XGBClassifier

    model = XGBClassifier(**xgb_params(params, n_jobs))
    model.fit(x, y)
    return model


def anomaly_scores(model: Any, x: pd.DataFrame) -> np.ndarray:
    """Probability of the anomaly class for each row (``x`` in ``input_columns`` order).

    An XGBoost classifier is asked through its booster's ``inplace_predict`` on the bare
    array: the same numbers as ``predict_proba`` without its per-call DataFrame checks
    (about 2 ms, which dominated scoring a few rows)."""
    if hasattr(model, "get_booster"):
        return np.asarray(model.get_booster().inplace_predict(x.to_numpy(dtype="float64")))
    return np.asarray(model.predict_proba(x))[:, 1]


def mlflow_client(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    uri = settings.resolved_mlflow_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(settings: Settings, client: MlflowClient) -> str:
    """The retraining experiment's id; artifacts of a new one go under the data directory."""
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    location = (settings.data_dir / "mlartifacts").resolve()
    location.mkdir(parents=True, exist_ok=True)
    return str(client.create_experiment(EXPERIMENT, artifact_location=location.as_uri()))


def use_mlflow(settings: Settings) -> None:
    """Point mlflow's fluent API at our store (called inside a step, never at import)."""
    import mlflow

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.resolved_mlflow_uri)
    mlflow.set_registry_uri(settings.resolved_mlflow_uri)


def use_bentoml_home(settings: Settings) -> Path:
    """Point BentoML at the store of ``settings``. BentoML reads BENTOML_HOME once per process
    and keeps its model store; a process that works for several settings (a test session)
    must repoint the store itself. The environment is left alone: it would leak into later
    Settings (which read BENTOML_HOME); children get the home through ``Settings.to_env``."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    home = settings.resolved_bentoml_home
    (home / "models").mkdir(parents=True, exist_ok=True)
    BentoMLContainer.bentoml_home.set(str(home))
    BentoMLContainer.model_store_dir.set(str(home / "models"))
    BentoMLContainer.model_store.set(ModelStore(str(home / "models")))
    return home


def code_commit() -> str:
    """The project's git commit, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(  # nosec B603 B607  # fixed argv, git from PATH, no shell
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
