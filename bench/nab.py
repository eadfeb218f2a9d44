"""NAB scoring of changepoint alarms, and the outlier metrics, as SKAB's leaderboard computes them.

A re-implementation of ``chp_score(..., metric="nab")`` in SKAB's ``core/metrics.py`` (from the
TSAD library) with the leaderboard's arguments: a detection window of ``width`` to the right of
each true changepoint (``anomaly_window_destination="righter"``), overlapping windows resolved
by cutting the right one (``intersection_mode="cut right window"``), only the first alarm in a
window counts (``clear_anomalies_mode=True``) and is scored by the "improved" tanh scale
(``scale_koef=1``, 1,000 steps), and the three profiles below. Every other alarm inside a
window is ignored; alarms outside all windows are false positives. Per profile the scores of
all files are summed first and then normalised: ``100 * (score - null) / (perfect - null)``,
where the null detector misses every changepoint and the perfect one finds each at once.

Times are nanosecond integers (``datetime64[ns]`` or pandas timestamps are converted), so the
position of an alarm in its window is the same float division pandas' Timedelta does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Profile:
    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES = (
    Profile("Standard", 1.0, -0.11, -1.0),
    Profile("LowFP", 1.0, -0.22, -1.0),
    Profile("LowFN", 1.0, -0.11, -2.0),
)
DETAIL = 1000  # steps of the scoring curve


@dataclass
class Confusion:
    """One file's alarms against its detection windows."""

    windows: list[tuple[int, int]]
    detections: dict[int, int] = field(default_factory=dict)  # window -> time of first alarm
    false_positives: int = 0

    @property
    def missed(self) -> int:
        return len(self.windows) - len(self.detections)

    def delays_ns(self) -> list[int]:
        """Per detected changepoint, first alarm minus window start (SKAB's average_time)."""
        return [t - self.windows[i][0] for i, t in sorted(self.detections.items())]


def to_ns(times: Iterable[object]) -> np.ndarray:
    """Timestamps (datetime64, pandas, ISO strings) as int64 nanoseconds, sorted."""
    values = pd.to_datetime(pd.Series(list(times), dtype="object"))
    if values.empty:
        return np.empty(0, dtype="int64")
    return np.sort(values.to_numpy(dtype="datetime64[ns]").astype("int64"))


def detection_windows(changepoints_ns: Sequence[int], width_ns: int) -> list[tuple[int, int]]:
    """[cp, cp + width] per changepoint; where one reaches into the next, the next starts
    where the previous ends (SKAB's "cut right window")."""
    windows = [[int(cp), int(cp) + int(width_ns)] for cp in changepoints_ns]
    for i in range(len(windows) - 1):
        if windows[i][1] >= windows[i + 1][0]:
            windows[i + 1][0] = windows[i][1]
    return [(a, b) for a, b in windows]


def confusion(windows: list[tuple[int, int]], alarms_ns: Sequence[int]) -> Confusion:
    alarms = np.sort(np.asarray(alarms_ns, dtype="int64"))
    result = Confusion(windows)
    if not windows:
        result.false_positives = int(alarms.size)
        return result
    # Before the first window, between windows (both ends open), after the last.
    outside = alarms < windows[0][0]
    for i, (start, end) in enumerate(windows):
        inside = alarms[(alarms >= start) & (alarms <= end)]
        if inside.size:
            result.detections[i] = int(inside[0])
        if i + 1 < len(windows):
            outside |= (alarms > end) & (alarms < windows[i + 1][0])
    outside |= alarms > windows[-1][1]
    result.false_positives = int(outside.sum())
    return result


def scaled_score(start: int, detected: int, end: int, a_tp: float, a_fp: float) -> float:
    """The "improved" NAB curve: a_tp at the window start down to a_fp at its end."""
    x = np.linspace(-np.pi / 2, np.pi / 2, DETAIL)
    y = (a_tp - a_fp) / 2 * -1 * np.tanh(x) / np.tanh(np.pi / 2) + (a_tp - a_fp) / 2 + a_fp
    # A zero-width window (two changepoints at one time) would divide by zero in SKAB's code;
    # a detection there counts as immediate.
    event = int((detected - start) / (end - start) * DETAIL) if end > start else 0
    return float(y[min(event, DETAIL - 1)])


def raw_scores(c: Confusion, profile: Profile) -> tuple[float, float, float]:
    """(score, null score, perfect score) of one file under one profile."""
    score = profile.a_fp * c.false_positives + profile.a_fn * c.missed
    for i, detected in c.detections.items():
        start, end = c.windows[i]
        score += scaled_score(start, detected, end, profile.a_tp, profile.a_fp)
    n = len(c.windows)
    return score, n * profile.a_fn, n * profile.a_tp


def nab_scores(confusions: Iterable[Confusion]) -> dict[str, float]:
    """Per profile, 100 * (score - null) / (perfect - null) over all files, 2 decimals."""
    totals = np.zeros((len(PROFILES), 3))
    for c in confusions:
        for p, profile in enumerate(PROFILES):
            totals[p] += raw_scores(c, profile)
    out = {}
    for p, profile in enumerate(PROFILES):
        score, null, perfect = totals[p]
        out[profile.name] = round(float(100 * (score - null) / (perfect - null)), 2)
    return out
