"""Each sensor's recent readings, from which serving computes a new reading's model inputs.

The features come from ``driftline.training.features.add_features``, the function training
uses, over a sensor's last ``window`` readings plus the new ones: the same rows give the same
features in both places (a window is computed from its own readings only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftline.records import ValidReading
from driftline.schema import SENSOR_ID, TS
from driftline.training.features import add_features, feature_columns

_POSITION = "_position"


@dataclass
class _Recent:
    ts: np.ndarray  # datetime64[ns], ascending
    values: np.ndarray  # (len(ts), len(features))


class SensorHistory:
    """Holds each sensor's last ``2 * window`` readings (by ts), so that a reading among the
    last ``window`` sent again gets the same inputs; at most ``max_sensors`` sensors, the
    longest unseen forgotten first."""

    def __init__(self, features: list[str], window: int, max_sensors: int = 20_000) -> None:
        self.features = features
        self.window = window
        self.held = 2 * window
        self.max_sensors = max_sensors
        self.columns = feature_columns(features)
        self._recent: dict[str, _Recent] = {}

    def model_inputs(self, readings: Sequence[ValidReading]) -> pd.DataFrame:
        """The model's input rows for ``readings``, in their order; afterwards each sensor's
        history holds them too. A reading seen before (same sensor and ts) replaces the held
        one instead of counting twice, so a retried or repeated request gets the same answer."""
        if not readings:
            return pd.DataFrame(columns=self.columns, dtype="float64")
        sensors = [r.sensor_id for r in readings]
        stamps = pd.to_datetime([r.ts for r in readings], utc=True).tz_localize(None).to_numpy()
        values = np.array(
            [[r.values.get(f, np.nan) for f in self.features] for r in readings], dtype="float64"
        )
        # One row per (sensor, ts); repeats within the call share the first one's inputs.
        first: dict[tuple[str, np.datetime64], int] = {}
        row_of = [
            first.setdefault((s, t), i)
            for i, (s, t) in enumerate(zip(sensors, stamps, strict=True))
        ]
        unique = sorted(set(row_of))

        past_sensor: list[str] = []
        past_ts: list[np.ndarray] = []
        past_values: list[np.ndarray] = []
        for sensor in dict.fromkeys(sensors[i] for i in unique):
            held = self._recent.get(sensor)
            if held is None:
                continue
            new_ts = [stamps[i] for i in unique if sensors[i] == sensor]
            keep = ~np.isin(held.ts, new_ts)
            past_sensor += [sensor] * int(keep.sum())
            past_ts.append(held.ts[keep])
            past_values.append(held.values[keep])

        frame = pd.DataFrame(
            {
                SENSOR_ID: past_sensor + [sensors[i] for i in unique],
                TS: np.concatenate([*past_ts, stamps[unique]]),
                _POSITION: np.concatenate([np.full(len(past_sensor), -1), unique]),
            }
        )
        matrix = np.concatenate([*past_values, values[unique]]) if past_values else values[unique]
        for j, f in enumerate(self.features):
            frame[f] = matrix[:, j]
        featured = add_features(frame, self.features, self.window)
        self._remember(featured)

        new = featured[featured[_POSITION] >= 0]
        by_row = pd.DataFrame(
            new[self.columns].to_numpy(dtype="float64"),
            index=new[_POSITION].to_numpy(),
            columns=self.columns,
        )
        return by_row.loc[row_of].reset_index(drop=True)

    def _remember(self, featured: pd.DataFrame) -> None:
        """Each sensor's newest rows of ``featured`` (sorted by sensor and ts)."""
        ts = featured[TS].to_numpy()
        values = featured[self.features].to_numpy(dtype="float64")
        for sensor, rows in featured.groupby(SENSOR_ID, sort=False).indices.items():
            last = rows[-self.held :]
            self._recent.pop(str(sensor), None)  # re-inserted last: dict order = recency
            self._recent[str(sensor)] = _Recent(ts[last].copy(), values[last].copy())
        while len(self._recent) > self.max_sensors:
            del self._recent[next(iter(self._recent))]

    def sensors(self) -> int:
        return len(self._recent)
