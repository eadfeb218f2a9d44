"""A ``ModelBundle`` as an MLflow model, and any registered version loaded as one interface.

The bundle is logged as a pyfunc whose artifact is the bundle's directory (model spec, booster
if any, per-sensor baselines): ``mlflow.pyfunc.load_model`` scores a frame of readings with
it anywhere, and Driftline reads the directory back as the ``ModelBundle`` itself. A version
registered before the anomaly families (the plain XGBoost flavour on rolling features) still
loads, as ``family = "xgboost-rolling"``, so a registry's older champion keeps serving.

Importing this module imports MLflow: import it inside the functions that need it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from driftline.anomaly.bundle import MANIFEST, ModelBundle

ARTIFACT = "bundle"
LEGACY_FAMILY = "xgboost-rolling"


class AnomalyPyfunc(PythonModel):
    """Alarm probabilities of a frame of readings (sensor_id, ts, measurements)."""

    def load_context(self, context: Any) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts[ARTIFACT]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return self.bundle.frame_scores(model_input)[0]


def log_bundle(bundle: ModelBundle, registered_model_name: str, pip: list[str]) -> Any:
    """Log ``bundle`` as the active run's ``model`` and register it; the ModelInfo."""
    with tempfile.TemporaryDirectory() as tmp:
        path = bundle.save(Path(tmp) / ARTIFACT)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=AnomalyPyfunc(),
            artifacts={ARTIFACT: str(path)},
            registered_model_name=registered_model_name,
            # Stated, not inferred: inference re-loads the model in a subprocess (seconds).
            pip_requirements=pip,
        )


@dataclass(frozen=True)
class LoadedVersion:
    """A registered version: its bundle, or (older versions) a plain XGBoost model."""

    bundle: ModelBundle | None
    legacy: Any = None

    @property
    def family(self) -> str:
        return self.bundle.family if self.bundle is not None else LEGACY_FAMILY

    def frame_probabilities(
        self, frame: pd.DataFrame, features: list[str], fallback_readings: int | None
    ) -> np.ndarray:
        """Per row of ``frame`` (readings with the rolling features added), its alarm
        probability; 0 for a sensor with no baseline (pending: it raises no alarm)."""
        if frame.empty:
            return np.empty(0)
        if self.bundle is None:
            from driftline.training import modeling

            return modeling.anomaly_scores(self.legacy, modeling.model_inputs(frame, features))
        scores, _ = self.bundle.frame_scores(frame, fallback_readings)
        return np.nan_to_num(scores, nan=0.0)


def load_model_dir(path: Path) -> LoadedVersion:
    """A downloaded MLflow model directory (or the BentoML store's copy of one)."""
    path = Path(path)
    bundle_dir = path / "artifacts" / ARTIFACT
    if (bundle_dir / MANIFEST).exists():
        return LoadedVersion(ModelBundle.load(bundle_dir))
    import mlflow.xgboost

    return LoadedVersion(None, mlflow.xgboost.load_model(str(path)))


def download_registered(tracking_uri: str, name: str, version: str, directory: str) -> Path:
    """``models:/<name>/<version>`` from the registry, downloaded into ``directory``."""
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}",
        dst_path=directory,
        tracking_uri=tracking_uri,
        registry_uri=tracking_uri,
    )
    return Path(local)


def load_registered(tracking_uri: str, name: str, version: str) -> LoadedVersion:
    """``models:/<name>/<version>`` from the registry."""
    with tempfile.TemporaryDirectory() as tmp:
        return load_model_dir(download_registered(tracking_uri, name, version, tmp))
