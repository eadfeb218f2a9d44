"""The demo's first champion: a model trained on normal synthetic pumps (with labelled bearing
faults), versioned, registered and promoted like any other, so the loop has something to
protect before any drift."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pandas as pd

from driftline.core.settings import Settings
from driftline.simulate.signals import SyntheticPump
from driftline.training import modeling, registry
from driftline.training.features import add_features
from driftline.validation.schema import SENSOR_ID, TS

log = logging.getLogger(__name__)

BOOTSTRAP_TAG = "bootstrap"


def pump_frame(
    sensors: list[str],
    rows: int,
    fault_share: float,
    seed: int,
    end: datetime,
    fault_rows: int = SyntheticPump.fault_rows,
) -> pd.DataFrame:
    """``rows`` readings a second per sensor, ending at ``end``: sensor_id, ts, label, values."""
    frames = []
    for i, sensor in enumerate(sensors):
        pump = SyntheticPump(seed=seed + i, fault_share=fault_share, fault_rows=fault_rows)
        data = [(t, values, label) for t, values, label in pump.rows(rows)]
        frame = pd.DataFrame([values for _, values, _ in data])
        frame.insert(0, SENSOR_ID, sensor)
        frame.insert(1, TS, [end - timedelta(seconds=rows - t) for t, _, _ in data])
        frame.insert(2, "label", [float(label or 0) for _, _, label in data])
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out[TS] = pd.to_datetime(out[TS], utc=True)
    return out


def bootstrap_data(
    settings: Settings,
    features: list[str],
    sensors: list[str],
    rows: int,
    fault_share: float,
    fault_rows: int = SyntheticPump.fault_rows,
) -> pd.DataFrame:
    """The first champion's training data. Its features become the drift service's reference
    unless there is one already, so the services can start while the model trains."""
    frame = pump_frame(sensors, rows, fault_share, 900, datetime.now(UTC), fault_rows)
    path = settings.resolved_reference_path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        frame[features].to_parquet(path, index=False)
    return frame


def bootstrap_champion(settings: Settings, features: list[str], frame: pd.DataFrame) -> str:
    """The champion's version: the one in the registry, else a model trained on ``frame``,
    versioned, registered and promoted."""
    from driftline.training.datarepo import DataRepo
    from driftline.training.promote import install_first_champion
    from driftline.training.train import train

    existing = registry.champion_version(modeling.mlflow_client(settings), settings.model_name)
    if existing is not None:
        return existing

    dataset = add_features(frame, features, settings.feature_window)
    DataRepo(settings).save_dataset(BOOTSTRAP_TAG, dataset)
    trained = train(settings, BOOTSTRAP_TAG, run_name="bootstrap")
    install_first_champion(settings, trained.model_version)
    log.info("bootstrap: %s version %s is champion", settings.model_name, trained.model_version)
    return trained.model_version
