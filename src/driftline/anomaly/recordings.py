"""Recordings: one sensor's readings in time order, with its baseline and (maybe) labels.

SKAB-format CSVs (``;``-separated, a ``datetime`` column, the measurements, optional
``anomaly`` and ``changepoint`` columns) load from any folders; nothing here names files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.anomaly.baseline import SensorBaseline, from_first_readings


@dataclass(frozen=True)
class Recording:
    """``values`` (n, measurements of the baseline) in time order; ``labels`` (n,) with 1 for
    an anomaly, or None when unlabelled. Rows ``< scored_from`` are the baseline's, never scored."""

    name: str
    values: np.ndarray
    baseline: SensorBaseline
    scored_from: int
    labels: np.ndarray | None = None

    def scored_labels(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError(f"recording {self.name} has no labels")
        return self.labels[self.scored_from :]


def skab_csvs(folders: Iterable[Path]) -> list[Path]:
    """The CSVs of the folders, in natural order (2.csv before 10.csv)."""
    paths: list[Path] = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"no such folder: {folder}")
        found = sorted(
            Path(folder).glob("*.csv"),
            key=lambda p: (int(p.stem) if p.stem.isdigit() else 10**9, p.stem),
        )
        paths += found
    return paths


def read_skab(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, sep=";")
    if "datetime" not in frame.columns:
        raise ValueError(f"{path}: not a SKAB-format CSV (no datetime column)")
    frame["ts"] = pd.to_datetime(frame["datetime"], utc=True)
    return frame


def recording_from_frame(
    name: str, frame: pd.DataFrame, measurements: list[str], baseline_readings: int
) -> Recording:
    """A recording whose baseline is its first ``baseline_readings`` valid rows (SKAB's
    protocol: the first 400 rows are the training part, assumed normal, never scored)."""
    baseline = from_first_readings(frame, name, measurements, baseline_readings)
    if baseline is None:
        raise ValueError(f"{name}: fewer than {baseline_readings} valid readings")
    labels = frame["anomaly"].to_numpy(dtype="float64") if "anomaly" in frame else None
    values = frame[measurements].apply(pd.to_numeric, errors="coerce").to_numpy("float64")
    # Scoring starts after the row that completed the baseline.
    valid = np.flatnonzero(np.isfinite(values).all(axis=1))
    return Recording(
        name=name,
        values=values,
        baseline=baseline,
        scored_from=int(valid[baseline_readings - 1]) + 1,
        labels=None if labels is None else (labels == 1).astype("int64"),
    )


def load_recordings(
    folders: Iterable[Path], measurements: list[str], baseline_readings: int
) -> list[Recording]:
    out = []
    for path in skab_csvs(folders):
        name = f"{path.parent.name}/{path.name}"
        out.append(recording_from_frame(name, read_skab(path), measurements, baseline_readings))
    return out
