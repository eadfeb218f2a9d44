"""Per-feature drift tests: Evidently's statistical tests, with what the reference allows
computed once.

Evidently's ``Report`` costs about 1.5 s per window whatever its size, almost all of it in
widgets drift detection does not need. We call its stattests directly instead: the normed
Wasserstein distance (the default here) is Evidently's ``_wasserstein_distance_norm``
(evidently/legacy/calculations/stattests/wasserstein_distance_norm.py) with the reference
sorted and its spread computed once; scipy's ``_cdf_distance`` does the same arithmetic, so
the scores are identical (tests/unit/test_drift_stats.py checks them, and the decisions,
against a ``DataDriftPreset`` report). Any other Evidently stattest name is called through
Evidently's registry. ``import evidently`` takes 10-20 s here, so it happens only then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class FeatureTest(Protocol):
    stattest: str
    threshold: float

    def score(self, window: np.ndarray) -> tuple[float, bool]:
        """(statistic, drifted) of one window column."""


@dataclass
class NormedWasserstein:
    """Evidently's "wasserstein": W1(reference, window) / max(std(reference), 0.001); drift
    when it is >= threshold."""

    reference: np.ndarray
    threshold: float
    stattest: str = "wasserstein"

    def __post_init__(self) -> None:
        self._sorted = np.sort(self.reference)
        self._norm = max(float(np.std(self.reference)), 0.001)

    def score(self, window: np.ndarray) -> tuple[float, bool]:
        u = self._sorted
        v = np.sort(window)
        merged = np.concatenate((u, v))
        merged.sort(kind="mergesort")  # merges the two sorted runs in linear time
        deltas = np.diff(merged)
        u_cdf = u.searchsorted(merged[:-1], "right") / u.size
        v_cdf = v.searchsorted(merged[:-1], "right") / v.size
        distance = float(np.sum(np.multiply(np.abs(u_cdf - v_cdf), deltas))) / self._norm
        return distance, distance >= self.threshold


@dataclass
class EvidentlyStatTest:
    """Any stattest of Evidently's registry, called directly (no Report)."""

    reference: np.ndarray
    threshold: float
    stattest: str

    def __post_init__(self) -> None:
        import pandas as pd
        from evidently.legacy.calculations.stattests import get_stattest
        from evidently.legacy.core import ColumnType

        self._column_type = ColumnType.Numerical
        self._reference = pd.Series(self.reference)
        self._test = get_stattest(
            self._reference, self._reference, self._column_type, self.stattest
        )

    def score(self, window: np.ndarray) -> tuple[float, bool]:
        import pandas as pd

        result = self._test(self._reference, pd.Series(window), self._column_type, self.threshold)
        return float(result.drift_score), bool(result.drifted)


def make_feature_test(stattest: str, reference: np.ndarray, threshold: float) -> FeatureTest:
    if stattest == "wasserstein":
        return NormedWasserstein(reference, threshold)
    return EvidentlyStatTest(reference, threshold, stattest)


def is_flatlined(window: np.ndarray, reference_distinct: int) -> bool:
    """A stuck sensor: one value through a whole window of a signal that normally varies.

    Distribution distances at useful thresholds miss it (a flatline at a typical value is
    close to the reference), so it is checked on its own.
    """
    return reference_distinct > 5 and window.size >= 30 and bool(np.all(window == window[0]))
