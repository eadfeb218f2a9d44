"""Baseline-relative features and smoothed scores of many sensors' series in one numpy pass.

Serving scores a batch of readings from many sensors. Computed sensor by sensor
(``relative_features``), each window length costs a dozen numpy calls per sensor whatever its
rows (about 40 us each): with 20-60 sensors a batch, the calls, not the arithmetic, were the
cost. Here the sensors' series are laid one after another, each behind ``window - 1`` NaN rows
so that no window reaches into the sensor before it, and the windows of every row wanted, of
every sensor, are gathered with one indexing call (the longest window; a shorter one is its
newest part). The arithmetic on each window is ``driftline.anomaly.features``' own
(``window_mean``, ``window_std``, the baseline's statistics), so a row equals the one
``relative_features`` gives over the sensor's whole series (to the last bits of a sum's
order; tested to 1e-9).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from driftline.anomaly.baseline import SensorBaseline
from driftline.anomaly.features import (
    FeatureRecipe,
    baseline_stats,
    recipe_columns,
    window_mean,
    window_std,
)

_CONSTANTS: dict[tuple[str, tuple[int, ...], tuple[int, ...]], np.ndarray] = {}
_CONSTANTS_SIZE = 20_000


def padded_stack(parts: Sequence[np.ndarray], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """The parts (each (n_i, k)) one after another, each behind ``pad`` NaN rows; and the
    index of each part's first row in the stack."""
    lengths = np.array([len(p) for p in parts], dtype="int64")
    starts = np.cumsum(lengths + pad) - lengths
    if pad == 0:
        return np.concatenate(parts), starts
    gap = np.full((pad, parts[0].shape[1]), np.nan)
    return np.concatenate([a for p in parts for a in (gap, p)]), starts


def tail_rows(starts: np.ndarray, lengths: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """Stack indexes of the last ``tails[i]`` rows of each part, part after part."""
    first = starts + lengths - tails  # each part's first wanted row
    before = np.cumsum(tails) - tails  # wanted rows of the parts before
    return np.repeat(first - before, tails) + np.arange(int(tails.sum()))


class Windows:
    """For each of ``rows``, its last ``window`` rows of ``stack`` (n, k, window), the newest
    last. ``mean(w)`` and ``std(w)``, for any ``w`` up to ``window``, are ``causal_mean``'s
    and ``causal_std``'s values at those rows. Readings mostly hold every value: then no
    window needs masking, and the arithmetic is the same without it."""

    def __init__(self, stack: np.ndarray, rows: np.ndarray, window: int) -> None:
        gathered = sliding_window_view(stack, window, axis=0)[rows - (window - 1)]
        self.finite = np.isfinite(gathered)
        self.complete = bool(self.finite.all())
        self.filled = gathered if self.complete else np.where(self.finite, gathered, 0.0)

    def mean(self, window: int) -> np.ndarray:
        filled, finite = self._last(window)
        if self.complete:
            return filled.sum(axis=2) / window
        return window_mean(filled, finite.sum(axis=2))

    def std(self, window: int) -> np.ndarray:
        filled, finite = self._last(window)
        if self.complete:
            deviation = filled - (filled.sum(axis=2) / window)[:, :, None]
            return np.sqrt((deviation * deviation).sum(axis=2) / window)
        return window_std(filled, finite, finite.sum(axis=2))

    def _last(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        cut = self.filled.shape[2] - window
        return self.filled[:, :, cut:], self.finite[:, :, cut:]


def _constants(
    baseline: SensorBaseline, columns: tuple[int, ...], windows: tuple[int, ...]
) -> np.ndarray:
    """A baseline's numbers the features use, as one row: its mean and scale (every
    measurement), then per window the rolling mean's centre and spread and the rolling std's
    typical value (the recipe's measurements); kept by baseline version."""
    key = (baseline.version, columns, windows)
    found = _CONSTANTS.get(key)
    if found is None:
        if len(_CONSTANTS) >= _CONSTANTS_SIZE:
            _CONSTANTS.pop(next(iter(_CONSTANTS)))
        parts = [np.asarray(baseline.mean, dtype="float64"), baseline.scale()]
        for w in windows:
            parts += baseline_stats(baseline, columns, w)
        found = _CONSTANTS[key] = np.concatenate(parts)
    return found


def relative_features_of(
    series: Sequence[np.ndarray],
    baselines: Sequence[SensorBaseline],
    recipe: FeatureRecipe,
    tails: Sequence[int],
) -> np.ndarray:
    """``relative_features(series[i], baselines[i], recipe, tails[i])`` of every sensor ``i``,
    stacked in sensor order: (sum of tails, columns). Every baseline must have the first one's
    measurements, and each series them as columns, in time order."""
    if not series:
        return np.empty((0, 0))
    measurements = baselines[0].measurements
    if any(b.measurements != measurements for b in baselines):
        raise ValueError("the baselines of one batch must share their measurements")
    if any(np.ndim(s) != 2 or np.shape(s)[1] != len(measurements) for s in series):
        raise ValueError(f"readings must have the baselines' {len(measurements)} measurements")
    columns = recipe_columns(recipe, measurements)
    m, c = len(measurements), len(columns)
    pad = recipe.history() - 1
    lengths = np.array([len(s) for s in series], dtype="int64")
    tail = np.minimum(np.asarray(tails, dtype="int64"), lengths)
    stack, starts = padded_stack([np.asarray(s, dtype="float64") for s in series], pad)
    constants = np.stack([_constants(b, columns, recipe.windows) for b in baselines])
    owner = np.repeat(np.arange(len(series)), lengths + pad)
    z = ((stack - constants[owner, :m]) / constants[owner, m : 2 * m])[:, list(columns)]
    rows = tail_rows(starts, lengths, tail)
    mine = constants[np.repeat(np.arange(len(series)), tail)]
    parts = [z[rows]] if recipe.raw else []
    windows = Windows(z, rows, max(recipe.windows)) if recipe.windows else None
    for i, w in enumerate(recipe.windows):
        at = 2 * m + 3 * c * i
        centre, spread, typical = (mine[:, at + j * c : at + (j + 1) * c] for j in range(3))
        if windows is not None:
            parts.append((windows.mean(w) - centre) / spread)
            if recipe.spread:
                parts.append(np.log((windows.std(w) + 1e-3) / (typical + 1e-3)))
    return np.hstack(parts) if parts else np.empty((len(rows), 0))


def causal_means_at(
    values: np.ndarray, lengths: np.ndarray, positions: np.ndarray, window: int
) -> np.ndarray:
    """``values`` (n,) holds several series one after another (``lengths``); per entry of
    ``positions`` (an index into ``values``), the mean of the last ``window`` values of its
    series up to it, NaN skipped: ``features.causal_mean`` of each series, at those rows."""
    if window <= 1:
        return values[positions]
    owner = np.repeat(np.arange(len(lengths)), lengths)
    gap = window - 1
    stack = np.full((len(values) + gap * len(lengths), 1), np.nan)
    stack[np.arange(len(values)) + gap * (owner + 1), 0] = values
    at = positions + gap * (owner[positions] + 1)
    return Windows(stack, at, window).mean(window)[:, 0]
