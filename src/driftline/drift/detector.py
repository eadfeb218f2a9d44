"""DriftDetector: compares a closed window with the reference, feature by feature. Pure logic.

This is the raw basis: measurements as they are. The baseline basis
(``driftline.drift.relative``) runs the same per-feature tests on values relative to each
sensor's baseline.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from driftline.core.records import DriftEvent, FeatureDrift
from driftline.drift.reference import Reference
from driftline.drift.stats import FeatureTest, is_flatlined, make_feature_test
from driftline.drift.windows import ClosedWindow


class FeatureTests:
    """One test per feature, each against its column of ``reference`` (rows x features)."""

    def __init__(
        self, features: list[str], reference: np.ndarray, stattest: str, threshold: float
    ) -> None:
        self.tests: dict[str, FeatureTest] = {
            f: make_feature_test(stattest, reference[:, i], threshold)
            for i, f in enumerate(features)
        }
        self._distinct = {f: int(np.unique(reference[:, i]).size) for i, f in enumerate(features)}

    def run(self, window: np.ndarray) -> list[FeatureDrift]:
        """Each feature's verdict on the window's columns (rows x features, same order)."""
        out = []
        for i, (name, test) in enumerate(self.tests.items()):
            statistic, drifted = test.score(window[:, i])
            out.append(
                FeatureDrift(
                    feature=name,
                    stattest=test.stattest,
                    statistic=statistic,
                    threshold=test.threshold,
                    drifted=drifted,
                )
            )
        return out

    def flatlined(self, window: np.ndarray) -> list[str]:
        """Features stuck at one value through the window (a stuck sensor)."""
        return [
            name
            for i, name in enumerate(self.tests)
            if is_flatlined(window[:, i], self._distinct[name])
        ]


class DriftDetector:
    def __init__(
        self, reference: Reference, stattest: str, threshold: float, share_threshold: float
    ) -> None:
        self.reference = reference
        self.share_threshold = share_threshold
        self.feature_tests = FeatureTests(reference.features, reference.values, stattest, threshold)
        self.tests = self.feature_tests.tests

    def compare(self, window: ClosedWindow) -> DriftEvent:
        features = self.feature_tests.run(window.values)
        flatlined = self.feature_tests.flatlined(window.values)
        return window_event(
            window, self.reference.reference_id, features, flatlined, self.share_threshold
        )


def window_event(
    window: ClosedWindow,
    reference_id: str,
    features: list[FeatureDrift],
    flatlined: list[str],
    share_threshold: float,
    id_key: str | None = None,
    **basis: Any,
) -> DriftEvent:
    """The event of one compared window (no features: not compared, drift share 0); its id
    from the window and ``id_key`` (default: the reference)."""
    share = sum(f.drifted for f in features) / len(features) if features else 0.0
    return DriftEvent(
        event_id=window_event_id(window, id_key or reference_id),
        sensor_id=window.sensor_id,
        window_start=window.start,
        window_end=window.end,
        window_size=len(window),
        reference_id=reference_id,
        features=features,
        drift_share=share,
        flatlined=flatlined,
        drifted=share >= share_threshold or bool(flatlined),
        closed_by=window.closed_by,
        **basis,
    )


def window_event_id(window: ClosedWindow, reference_id: str) -> str:
    """The same window compared with the same reference has the same id (redeliveries)."""
    key = f"{window.sensor_id}|{window.first_reading_id}|{window.last_reading_id}|{reference_id}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
