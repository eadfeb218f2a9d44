"""Sources of readings: a synthetic pump and CSV replays in SKAB format.

A source yields ``(offset_seconds, values, label)`` rows; the publisher turns them into
readings with timestamps and sequence numbers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

Row = tuple[float, dict[str, float], int | None]

# (mean, std, lag-1 autocorrelation) per measurement, from SKAB's anomaly-free recording.
PUMP_STATS: dict[str, tuple[float, float, float]] = {
    "Accelerometer1RMS": (0.212604, 0.00474009, 0.927),
    "Accelerometer2RMS": (0.268407, 0.0039883, 0.887),
    "Current": (2.40301, 0.486443, 0.074),
    "Pressure": (0.111266, 0.253319, 0.107),
    "Temperature": (89.4723, 0.667073, 0.938),
    "Thermocouple": (28.4743, 0.730695, 0.999),
    "Voltage": (228.647, 10.98, 0.009),
    "Volume Flow RateRMS": (125.237, 1.60524, 0.949),
}


# A bearing fault: the vibration of both accelerometers rises by this many stds.
FAULT_FEATURES = ("Accelerometer1RMS", "Accelerometer2RMS")
FAULT_SHIFT_STDS = 6.0


@dataclass
class SyntheticPump:
    """Each measurement is an AR(1) process with SKAB's mean, spread and autocorrelation.

    With ``fault_share`` > 0, fault episodes of ``fault_rows`` readings (both accelerometers
    ``FAULT_SHIFT_STDS`` stds up, labelled 1) take about that share of the readings; the other
    readings are labelled 0. The model learns to flag the faults.
    """

    seed: int = 0
    period_seconds: float = 1.0
    fault_share: float = 0.0
    fault_rows: int = 10

    def rows(self, count: int | None = None) -> Iterator[Row]:
        rng = np.random.default_rng(self.seed)
        state = {name: 0.0 for name in PUMP_STATS}
        # Episodes start with the probability that gives fault_share of rows in faults.
        start = self.fault_share / (self.fault_rows * (1 - self.fault_share) + self.fault_share)
        fault_left = 0
        i = 0
        while count is None or i < count:
            if fault_left == 0 and self.fault_share > 0 and rng.random() < start:
                fault_left = self.fault_rows
            values = {}
            for name, (mean, std, phi) in PUMP_STATS.items():
                # Stationary AR(1): the innovation's scale keeps the marginal std at `std`.
                state[name] = phi * state[name] + rng.normal(0.0, std * math.sqrt(1 - phi**2))
                shift = FAULT_SHIFT_STDS * std if fault_left and name in FAULT_FEATURES else 0.0
                values[name] = round(mean + state[name] + shift, 6)
            yield i * self.period_seconds, values, 1 if fault_left else 0
            fault_left = max(0, fault_left - 1)
            i += 1


def read_skab_csv(path: Path) -> pd.DataFrame:
    """A SKAB-format file: ';'-separated, a datetime column, measurements, optional labels."""
    frame = pd.read_csv(path, sep=";")
    frame["datetime"] = pd.to_datetime(frame["datetime"])
    return frame.sort_values("datetime").reset_index(drop=True)


@dataclass
class CsvReplay:
    """Replays SKAB-format files one after another, keeping their time spacing."""

    paths: list[Path]
    features: list[str]

    def rows(self, count: int | None = None) -> Iterator[Row]:
        elapsed = 0.0
        emitted = 0
        for path in self.paths:
            frame = read_skab_csv(path)
            seconds = (frame["datetime"] - frame["datetime"].iloc[0]).dt.total_seconds()
            labels = frame.get("anomaly")
            for i in range(len(frame)):
                if count is not None and emitted >= count:
                    return
                values = {f: float(frame.at[i, f]) for f in self.features}
                label = None if labels is None or pd.isna(labels.iat[i]) else int(labels.iat[i])
                yield elapsed + float(seconds.iat[i]), values, label
                emitted += 1
            elapsed += float(seconds.iat[-1]) + 1.0
