"""Reference data: what the drift service compares live windows with.

It is the training data of the model in production; before any model exists, a baseline file
(for the SKAB profile: the anomaly-free recording), built by ``driftline reference build``.
A reference with a ``sensor_id`` column (a model's, since the baseline basis) keeps each row's
sensor, so each can be taken relative to its own sensor's baseline (``driftline.drift.relative``);
one without it is one sensor's readings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.core.errors import ConfigurationError

SENSOR_ID = "sensor_id"  # the readings' column (driftline.validation.schema; not imported: pandera)


@dataclass(frozen=True)
class Reference:
    reference_id: str
    features: list[str]
    values: np.ndarray  # rows x features
    source: str
    sensors: np.ndarray | None = None  # each row's sensor id, when the file has them

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def column(self, feature: str) -> np.ndarray:
        return self.values[:, self.features.index(feature)]


def _read_any(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    with path.open() as fh:
        head = fh.readline()
    return pd.read_csv(path, sep=";" if head.count(";") > head.count(",") else ",")


def load_reference(path: Path, features: list[str]) -> Reference:
    """Load a reference file (Parquet, or CSV with ',' or ';'): one column per feature."""
    try:
        frame = _read_any(Path(path))
    except FileNotFoundError:
        raise ConfigurationError(
            f"no reference data at {path}: build one with 'driftline reference build'"
        ) from None
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ConfigurationError(f"reference {path} lacks columns {missing}")
    values = frame[features].to_numpy(dtype="float64")
    complete = np.isfinite(values).all(axis=1)
    values = values[complete]
    if len(values) < 30:
        raise ConfigurationError(f"reference {path} has only {len(values)} complete rows")
    sensors = None
    if SENSOR_ID in frame.columns:
        sensors = frame[SENSOR_ID].astype(str).to_numpy()[complete]
    digest = hashlib.blake2b(values.tobytes(), digest_size=8).hexdigest()
    return Reference(f"ref-{digest}", features, values, str(path), sensors)


def build_reference(sources: list[Path], features: list[str], out: Path) -> Reference:
    """Concatenate the feature columns of ``sources`` into a Parquet reference file."""
    frame = pd.concat([_read_any(Path(p))[features] for p in sources], ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    return load_reference(out, features)
