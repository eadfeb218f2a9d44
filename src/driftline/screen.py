"""A vectorized screen in front of the pandera reading schema.

pandera reports which check each bad value failed, but a call costs milliseconds of fixed
overhead (about 20 checks over 11 columns) whatever the batch size. Almost every reading is
good, so the validator first runs these plain numpy checks, built from the same profile: rows
they pass are rows the schema passes, and only the rows they flag go through pandera, which
says why. ``tests/unit/test_screen.py`` holds the two to the same verdict on generated batches.
"""

from __future__ import annotations

from collections.abc import Container
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from driftline.profile import Profile
from driftline.schema import READING_ID, SENSOR_ID, TS


class Screen:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        names = list(profile.measurements)
        self.features = names
        self.low = np.array([profile.measurements[n].min for n in names], dtype="float64")
        self.high = np.array([profile.measurements[n].max for n in names], dtype="float64")
        self._known: dict[str, bool] = {}  # sensor id -> matches the profile's patterns

    def flagged(self, frame: pd.DataFrame, now: datetime, seen: Container[str]) -> np.ndarray:
        """Row mask: True where the reading schema may fail (it will, if the screen is right)."""
        bad = ~self._known_sensors(frame[SENSOR_ID].to_numpy(dtype=object))
        ts = frame[TS]
        policy = self.profile.timestamps
        latest = pd.Timestamp(now + timedelta(seconds=policy.max_future_seconds))
        earliest = pd.Timestamp(now - timedelta(seconds=policy.max_age_seconds))
        bad |= ts.isna().to_numpy() | ~((ts <= latest) & (ts >= earliest)).to_numpy()
        ids = frame[READING_ID].to_numpy(dtype=object)
        bad |= np.fromiter(
            (not isinstance(i, str) or i in seen for i in ids), dtype=bool, count=len(ids)
        )
        values = frame[self.features].to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            in_range = (values >= self.low) & (values <= self.high)  # False for NaN too
        bad |= ~in_range.all(axis=1)
        return bad

    def _known_sensors(self, ids: np.ndarray) -> np.ndarray:
        known = self._known
        out = np.empty(len(ids), dtype=bool)
        for i, sensor in enumerate(ids):
            hit = known.get(sensor) if isinstance(sensor, str) else False
            if hit is None:
                if len(known) > 100_000:
                    known.clear()
                hit = known[sensor] = self.profile.is_known_sensor(sensor)
            out[i] = hit
        return out
