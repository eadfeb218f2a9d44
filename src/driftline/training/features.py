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

from driftline.core.errors import DriftlineError
from driftline.validation.schema import SENSOR_ID, TS

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
    values = out[features].to_numpy(dtype="float64")
    mean = np.empty_like(values)
    std = np.empty_like(values)
    for rows in groups:
        mean[rows], std[rows] = rolling_mean_std(values[rows], window)
    derived: dict[str, np.ndarray] = {}
    for j, m in enumerate(features):
        derived[m + MEAN] = mean[:, j]
        derived[m + STD] = std[:, j]
        derived[m + DEV] = values[:, j] - mean[:, j]
    return pd.concat([out, pd.DataFrame(derived, index=out.index)], axis=1)


def rolling_windows(values: np.ndarray, window: int) -> np.ndarray:
    """Each row's window of one sensor's readings in ts order, (n, k) to (n, k, window):
    the row and the ``window - 1`` before it, NaN where the series has not begun."""
    padded = np.concatenate([np.full((window - 1, values.shape[1]), np.nan), values])
    return sliding_window_view(padded, window, axis=0)


def window_features(values: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Model input rows, (n, 4 * k) in ``feature_columns`` order, from each row's values (n, k)
    and its windows (n, k, window): per measurement the value, the window's mean, its sample
    std (0 while it holds one value; NaN skipped) and the value minus the mean."""
    mean, std = window_mean_std(windows)
    return np.stack([values, mean, std, values - mean], axis=2).reshape(len(values), -1)


def rolling_mean_std(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample std over the last ``window`` rows of each column of ``values``
    (n, k), skipping NaN; the std is 0 while a window holds one value."""
    return window_mean_std(rolling_windows(values, window))


def window_mean_std(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    present = ~np.isnan(windows)
    count = present.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(present, windows, 0.0).sum(axis=2) / count
        squares = np.where(present, windows - mean[:, :, None], 0.0) ** 2
        std = np.sqrt(squares.sum(axis=2) / (count - 1))
    return mean, np.where(count > 1, std, 0.0)
