"""Each sensor's recent readings, from which serving computes a new reading's model inputs.

The inputs come from ``driftline.training.features`` (``rolling_windows`` and
``window_features``, the functions under training's ``add_features``) over a sensor's readings
in ts order: a window is computed from its own readings only, so the last ``window`` readings
give what the full history gives. All new readings of a batch are featurized in one call.

Where the readings are held is a ``HistoryStore``: this process's memory (``MemoryHistory``, the
default: one serving process), or Redis (``driftline.sensor_history_redis``), shared by every
serving replica so that a sensor's requests may reach any of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd

from driftline.core.records import ValidReading, epoch_ns
from driftline.training.features import feature_columns, rolling_windows, window_features

# One sensor's readings: int64 ns since the epoch (n,), and their values (n, len(features)).
Readings = tuple[np.ndarray, np.ndarray]


class HistoryUnavailable(RuntimeError):
    """The history store cannot be reached: nothing of the batch is scored."""


class HistoryStore(Protocol):
    def merge(self, new: Mapping[str, Readings]) -> dict[str, Readings]:
        """Per sensor: add its new readings (distinct ts), each replacing a held reading of
        the same ts; return all of its readings, held and new, in ts order. Afterwards the
        store holds at most its bound of each sensor's newest readings."""
        ...

    def sensors(self) -> int: ...


class SensorHistory:
    """Model inputs of new readings from each sensor's last ``2 * window`` readings (by ts),
    kept so that a reading among the last ``window`` sent again gets the same inputs."""

    def __init__(
        self,
        features: list[str],
        window: int,
        store: HistoryStore | None = None,
        max_sensors: int = 20_000,
    ) -> None:
        self.features = features
        self.window = window
        self.held = 2 * window
        self.columns = feature_columns(features)
        self.store = store if store is not None else MemoryHistory(self.held, max_sensors)

    def model_inputs(self, readings: Sequence[ValidReading]) -> pd.DataFrame:
        """The model's input rows for ``readings``, in their order; afterwards each sensor's
        history holds them too. A reading seen before (same sensor and ts) replaces the held
        one instead of counting twice, so a retried or repeated request gets the same answer."""
        stamps = np.array([epoch_ns(r.ts) for r in readings], dtype="int64")
        values = np.array(
            [[r.values.get(f, np.nan) for f in self.features] for r in readings], dtype="float64"
        ).reshape(len(readings), len(self.features))
        return self.inputs([r.sensor_id for r in readings], stamps, values)

    def inputs(
        self, sensor_ids: Sequence[str], stamps: np.ndarray, values: np.ndarray
    ) -> pd.DataFrame:
        """``model_inputs`` of readings given as columns: each one's sensor, its ts (int64 ns
        since the epoch, (n,)) and its values in the order of ``features`` ((n, features))."""
        # One row per (sensor, ts); repeats within the call share the first one's inputs.
        first: dict[tuple[str, int], int] = {}
        row_of = [first.setdefault((s, t), i) for i, (s, t) in enumerate(
            zip(sensor_ids, stamps.tolist(), strict=True))]  # fmt: skip
        by_sensor: dict[str, list[int]] = {}
        for i in first.values():
            by_sensor.setdefault(sensor_ids[i], []).append(i)
        rows = {sensor: np.array(index) for sensor, index in by_sensor.items()}
        merged = self.store.merge({s: (stamps[i], values[i]) for s, i in rows.items()})

        order: list[np.ndarray] = []
        windows: list[np.ndarray] = []
        for sensor, index in rows.items():
            ts_all, values_all = merged[sensor]
            order.append(index)
            position = np.searchsorted(ts_all, stamps[index])
            windows.append(rolling_windows(values_all, self.window)[position])
        out = np.empty((len(sensor_ids), len(self.columns)))
        if order:
            index = np.concatenate(order)
            out[index] = window_features(values[index], np.concatenate(windows))
        return pd.DataFrame(out[row_of], columns=self.columns)

    def sensors(self) -> int:
        return self.store.sensors()


class MemoryHistory:
    """Each sensor's newest ``held`` readings in this process; at most ``max_sensors`` sensors,
    the longest unseen forgotten first."""

    def __init__(self, held: int, max_sensors: int = 20_000) -> None:
        self.held = held
        self.max_sensors = max_sensors
        self._recent: dict[str, Readings] = {}

    def merge(self, new: Mapping[str, Readings]) -> dict[str, Readings]:
        out = {sensor: self._merge_one(sensor, ts, values) for sensor, (ts, values) in new.items()}
        while len(self._recent) > self.max_sensors:
            del self._recent[next(iter(self._recent))]
        return out

    def _merge_one(self, sensor: str, ts: np.ndarray, values: np.ndarray) -> Readings:
        held = self._recent.pop(sensor, None)  # re-inserted last: dict order = recency
        if held is None:
            ts_all, values_all = ts, values
        elif held[0][-1] < ts.min():  # nothing held to replace
            ts_all, values_all = np.concatenate([held[0], ts]), np.concatenate([held[1], values])
        else:
            keep = ~np.isin(held[0], ts)
            ts_all = np.concatenate([held[0][keep], ts])
            values_all = np.concatenate([held[1][keep], values])
        if len(ts_all) > 1 and not (np.diff(ts_all) > 0).all():
            order = np.argsort(ts_all, kind="stable")
            ts_all, values_all = ts_all[order], values_all[order]
        self._recent[sensor] = (ts_all[-self.held :], values_all[-self.held :])
        return ts_all, values_all

    def sensors(self) -> int:
        return len(self._recent)
