"""Each sensor's recent readings, from which serving computes a new reading's model inputs.

The inputs come from ``driftline.training.features`` (``rolling_windows`` and
``window_features``, the functions under training's ``add_features``) over a sensor's readings
in ts order: a window is computed from its own readings only, so the last ``window`` readings
give what the full history gives. All new readings of a batch are featurized in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftline.records import ValidReading, epoch_ns
from driftline.training.features import feature_columns, rolling_windows, window_features


@dataclass
class _Recent:
    ts: np.ndarray  # int64 ns since the epoch, ascending
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
        stamps = np.array([epoch_ns(r.ts) for r in readings], dtype="int64")
        values = np.array(
            [[r.values.get(f, np.nan) for f in self.features] for r in readings], dtype="float64"
        ).reshape(len(readings), len(self.features))
        # One row per (sensor, ts); repeats within the call share the first one's inputs.
        first: dict[tuple[str, int], int] = {}
        row_of = [first.setdefault((r.sensor_id, int(t)), i) for i, (r, t) in enumerate(
            zip(readings, stamps, strict=True))]  # fmt: skip
        by_sensor: dict[str, list[int]] = {}
        for i in first.values():
            by_sensor.setdefault(readings[i].sensor_id, []).append(i)

        order: list[np.ndarray] = []
        windows: list[np.ndarray] = []
        for sensor, rows in by_sensor.items():
            index = np.array(rows)
            order.append(index)
            windows.append(self._add(sensor, stamps[index], values[index]))
        while len(self._recent) > self.max_sensors:
            del self._recent[next(iter(self._recent))]
        out = np.empty((len(readings), len(self.columns)))
        if order:
            index = np.concatenate(order)
            out[index] = window_features(values[index], np.concatenate(windows))
        return pd.DataFrame(out[row_of], columns=self.columns)

    def _add(self, sensor: str, ts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """The windows of one sensor's new readings (in the given order), (n, k, window);
        the readings join its history."""
        held = self._recent.pop(sensor, None)  # re-inserted last: dict order = recency
        if held is not None and held.ts[-1] < ts[0] and (len(ts) == 1 or (np.diff(ts) > 0).all()):
            # The common case, newer readings in order: append, no sort.
            ts_all = np.concatenate([held.ts, ts])
            values_all = np.concatenate([held.values, values])
            self._recent[sensor] = _Recent(ts_all[-self.held :], values_all[-self.held :])
            return rolling_windows(values_all, self.window)[len(held.ts) :]
        if held is not None:
            keep = ~np.isin(held.ts, ts)
            ts_all = np.concatenate([held.ts[keep], ts])
            values_all = np.concatenate([held.values[keep], values])
            first_new = int(keep.sum())
        else:
            ts_all, values_all, first_new = ts, values, 0
        order = np.argsort(ts_all, kind="stable")
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        kept = order[-self.held :]
        self._recent[sensor] = _Recent(ts_all[kept], values_all[kept])
        return rolling_windows(values_all[order], self.window)[position[first_new:]]

    def sensors(self) -> int:
        return len(self._recent)
