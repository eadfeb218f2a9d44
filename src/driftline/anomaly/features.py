"""Model inputs relative to a sensor's baseline, computed causally.

Every feature is in units of the sensor's own normal, so a pump at another operating point
(flow x3, temperature +10 degC) gives the same features as long as it behaves as its baseline
did: a level shift and a scale change of a measurement cancel out of ``(x - mean) / std``.

Row ``i`` uses rows ``<= i`` only (no look-ahead). A rolling mean at the start of a series
averages what there is; callers score a sensor's readings after its baseline, with at least
``max(windows)`` readings of history in front.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import BaseModel, ConfigDict, Field

from driftline.anomaly.baseline import SensorBaseline


class FeatureRecipe(BaseModel):
    """Which baseline-relative features a model reads.

    ``raw``: each reading standardised by the baseline's mean and std. Per window ``w`` of
    ``windows``: the causal rolling mean of those, standardised by how that rolling mean
    spread over the baseline itself (``_mean<w>``); with ``spread``, the log ratio of the
    rolling std to its median over the baseline (``_spread<w>``).
    """

    model_config = ConfigDict(frozen=True)

    raw: bool = True
    windows: tuple[int, ...] = Field(default=(30,))
    spread: bool = False
    measurements: tuple[str, ...] | None = None

    def columns(self, baseline_measurements: tuple[str, ...]) -> list[str]:
        names = list(self.measurements or baseline_measurements)
        out = [f"{m}_z" for m in names] if self.raw else []
        for w in self.windows:
            out += [f"{m}_mean{w}" for m in names]
            if self.spread:
                out += [f"{m}_spread{w}" for m in names]
        return out

    def history(self) -> int:
        """Readings a row's features look back over (itself included)."""
        return max((1, *self.windows))


def _windows(
    values: np.ndarray, window: int, tail: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's last ``window`` rows (n, k, window) with NaN as 0, which of them hold a
    value, and how many do (n, k); of the last ``tail`` rows only, if given."""
    values = np.asarray(values, dtype="float64")
    pad = np.full((window - 1, values.shape[1]), np.nan)
    view = sliding_window_view(np.concatenate([pad, values]), window, axis=0)
    if tail is not None:
        view = view[len(view) - min(tail, len(view)) :]
    finite = np.isfinite(view)
    return np.where(finite, view, 0.0), finite, finite.sum(axis=2)


def causal_mean(values: np.ndarray, window: int, tail: int | None = None) -> np.ndarray:
    """Per column, the mean of the last ``window`` rows up to each row, NaN skipped
    (NaN where the window holds no value).

    Each window is summed from its own rows (not as a difference of running sums), so a row's
    value does not depend on how much history precedes the window: serving, which holds a
    sensor's last rows only, computes what training computed over the whole series."""
    filled, _, n = _windows(values, window, tail)
    return window_mean(filled, n)


def causal_std(values: np.ndarray, window: int, tail: int | None = None) -> np.ndarray:
    """Per column, the population std of the last ``window`` rows up to each row (NaN
    skipped), from each window's own rows."""
    return window_std(*_windows(values, window, tail))


def window_mean(filled: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The mean of each window (NaN as 0 in ``filled``, ``n`` values in it), NaN if empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, filled.sum(axis=2) / np.maximum(n, 1), np.nan)


def window_std(filled: np.ndarray, finite: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The population std of each window's values, NaN if empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=2) / np.maximum(n, 1)
        deviation = np.where(finite, filled - mean[:, :, None], 0.0)
        variance = (deviation * deviation).sum(axis=2) / np.maximum(n, 1)
        return np.where(n > 0, np.sqrt(variance), np.nan)


_STATS: dict[tuple[str, tuple[int, ...], int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_STATS_SIZE = 4096


def baseline_stats(
    baseline: SensorBaseline, columns: tuple[int, ...], window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_window_stats``, kept by baseline version (hashing a baseline's readings on every
    call cost serving more than the features)."""
    key = (baseline.version, columns, window)
    found = _STATS.get(key)
    if found is None:
        if len(_STATS) >= _STATS_SIZE:
            _STATS.pop(next(iter(_STATS)))
        found = _STATS[key] = _window_stats(baseline, columns, window)
    return found


def _window_stats(
    baseline: SensorBaseline, columns: tuple[int, ...], window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over the baseline's own readings (full windows only): the rolling mean's mean and
    spread, and the rolling std's median, per measurement."""
    z = baseline.standardise(baseline.values())[:, list(columns)]
    start = min(window - 1, len(z) - 2)
    mean = causal_mean(z, window)[start:]
    std = causal_std(z, window)[start:]
    spread = mean.std(axis=0, ddof=1)
    # A mean that never moved over the baseline: fall back to the raw spread over sqrt(w).
    spread = np.where(spread > 1e-9, spread, 1.0 / np.sqrt(window))
    typical = np.median(std, axis=0)
    return mean.mean(axis=0), spread, np.where(typical > 1e-9, typical, 1e-3)


def recipe_columns(recipe: FeatureRecipe, measurements: tuple[str, ...]) -> tuple[int, ...]:
    """Where the measurements the recipe reads are among a baseline's ``measurements``."""
    chosen = recipe.measurements or measurements
    unknown = [m for m in chosen if m not in measurements]
    if unknown:
        raise ValueError(f"recipe names measurements the baseline lacks: {unknown}")
    return tuple(measurements.index(m) for m in chosen)


def relative_features(
    values: np.ndarray, baseline: SensorBaseline, recipe: FeatureRecipe, tail: int | None = None
) -> np.ndarray:
    """Feature rows (n, len(recipe.columns(...))) of one sensor's readings (n, measurements of
    the baseline, in its order and time order); with ``tail``, of its last ``tail`` rows only
    (what serving needs: the same values as those rows of the whole)."""
    values = np.asarray(values, dtype="float64")
    if values.ndim != 2 or values.shape[1] != len(baseline.measurements):
        raise ValueError(
            f"readings of shape {values.shape}, baseline has {len(baseline.measurements)} "
            "measurements"
        )
    columns = recipe_columns(recipe, baseline.measurements)
    z = baseline.standardise(values)[:, list(columns)]
    rows = len(z) if tail is None else min(tail, len(z))
    parts = [z[len(z) - rows :]] if recipe.raw else []
    for w in recipe.windows:
        centre, spread, typical = baseline_stats(baseline, columns, w)
        parts.append((causal_mean(z, w, tail) - centre) / spread)
        if recipe.spread:
            parts.append(np.log((causal_std(z, w, tail) + 1e-3) / (typical + 1e-3)))
    return np.hstack(parts) if parts else np.empty((rows, 0))
