"""DriftDetector: compares a closed window with the reference, feature by feature. Pure logic."""

from __future__ import annotations

import hashlib

import numpy as np

from driftline.core.records import DriftEvent, FeatureDrift
from driftline.drift.reference import Reference
from driftline.drift.stats import FeatureTest, is_flatlined, make_feature_test
from driftline.drift.windows import ClosedWindow


class DriftDetector:
    def __init__(
        self, reference: Reference, stattest: str, threshold: float, share_threshold: float
    ) -> None:
        self.reference = reference
        self.share_threshold = share_threshold
        self.tests: dict[str, FeatureTest] = {
            f: make_feature_test(stattest, reference.column(f), threshold)
            for f in reference.features
        }
        self._distinct = {f: int(np.unique(reference.column(f)).size) for f in reference.features}

    def compare(self, window: ClosedWindow) -> DriftEvent:
        features = []
        flatlined = []
        for i, (name, test) in enumerate(self.tests.items()):
            column = window.values[:, i]
            statistic, drifted = test.score(column)
            features.append(
                FeatureDrift(
                    feature=name,
                    stattest=test.stattest,
                    statistic=statistic,
                    threshold=test.threshold,
                    drifted=drifted,
                )
            )
            if is_flatlined(column, self._distinct[name]):
                flatlined.append(name)
        share = sum(f.drifted for f in features) / len(features)
        return DriftEvent(
            event_id=window_event_id(window, self.reference.reference_id),
            sensor_id=window.sensor_id,
            window_start=window.start,
            window_end=window.end,
            window_size=len(window),
            reference_id=self.reference.reference_id,
            features=features,
            drift_share=share,
            flatlined=flatlined,
            drifted=share >= self.share_threshold or bool(flatlined),
            closed_by=window.closed_by,
        )


def window_event_id(window: ClosedWindow, reference_id: str) -> str:
    """The same window compared with the same reference has the same id (redeliveries)."""
    key = f"{window.sensor_id}|{window.first_reading_id}|{window.last_reading_id}|{reference_id}"
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
