"""Model input features: per-sensor rolling statistics of each measurement.

Training (preprocess) and serving call this same pure function, so the two cannot disagree.
Each window is computed from its own readings only (not a running sum carried along the
series), so a sensor's last ``window`` readings give bit-for-bit the features that its full
history gives for those rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from driftline.errors import DriftlineError
from driftline.schema import SENSOR_ID, TS

MEAN = "_mean"
STD = "_std"
DEV = "_dev"


def feature_columns(features: list[str]) -> list[str]:
    """Names of the model's input columns: each measurement and its rolling statistics."""
    return [f"{m}{suffix}" for m in features for suffix in ("", MEAN, STD, DEV)]


def add_features(frame: pd.DataFrame, features: list[str], window: int) -> pd.DataFrame:
    """A copy of ``frame``, sorted by sensor and time, with the rolling statistics added.

    Per sensor, in ts order, over the last ``window`` readings (fewer at the start):
    ``<m>_mean``, ``<m>_std`` (sample std, 0 while only one reading) and ``<m>_dev``
    (the value minus its rolling mean). NaN values are skipped, as in pandas' rolling.
    """
    if window < 1:
        raise DriftlineError(f"feature window must be at least 1, got {window}")
    missing = [c for c in (SENSOR_ID, TS, *features) if c not in frame.columns]
    if missing:
        raise DriftlineError(f"frame lacks columns {missing}")

    out = frame.sort_values([SENSOR_ID, TS], kind="mergesort").reset_index(drop=True)
    # Row positions of each sensor's readings, in time order (the frame is sorted).
    groups = list(out.groupby(SENSOR_ID, sort=False).indices.values())
    derived: dict[str, np.ndarray] = {}
    for m in features:
        values = out[m].to_numpy(dtype="float64")
        mean = np.empty(len(out))
        std = np.empty(len(out))
        for rows in groups:
            mean[rows], std[rows] = _rolling_mean_std(values[rows], window)
        derived[m + MEAN] = mean
        derived[m + STD] = std
        derived[m + DEV] = values - mean
    return pd.concat([out, pd.DataFrame(derived, index=out.index)], axis=1)


def _rolling_mean_std(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    padded = np.concatenate([np.full(window - 1, np.nan), values])
    windows = sliding_window_view(padded, window)
    present = ~np.isnan(windows)
    count = present.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, windows, 0.0).sum(axis=1) / count
        squares = np.where(present, windows - mean[:, None], 0.0) ** 2
        std = np.sqrt(squares.sum(axis=1) / (count - 1))
    return mean, np.where(count > 1, std, 0.0)
