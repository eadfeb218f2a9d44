"""Operators' ``normal`` labels as a sensor's baseline (``driftline baseline set --from-labels``).

A reading counts as labelled normal when the narrowest labelled range of its sensor covering it
says ``normal`` (as the training join decides: a ``fault`` or ``unsure`` region inside a task
whose verdict is ``normal`` leaves that region out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LABEL = "label"


def _verdicts(readings: pd.DataFrame, spans: pd.DataFrame) -> pd.Series:
    """Each reading's label by the narrowest labelled range covering it (None: unlabelled)."""
    ts = pd.to_datetime(readings["ts"], utc=True)
    verdict = pd.Series(None, index=readings.index, dtype=object)
    widest_first = spans.assign(width=spans["end_ts"] - spans["start_ts"]).sort_values(
        "width", ascending=False, kind="mergesort"
    )
    for span in widest_first.itertuples():
        inside = (
            (readings["sensor_id"] == span.sensor_id)
            & (ts >= pd.Timestamp(span.start_ts, tz="UTC"))
            & (ts <= pd.Timestamp(span.end_ts, tz="UTC"))
        )
        verdict[inside] = str(span.label)
    return verdict


def labelled_normal(readings: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``readings`` (sensor_id, ts) whose narrowest covering span is ``normal``;
    ``spans`` as ``training_join.label_spans`` returns them."""
    if readings.empty or spans.empty:
        return readings.iloc[0:0]
    return readings[_verdicts(readings, spans) == "normal"]


def normal_runs(
    readings: pd.DataFrame, spans: pd.DataFrame
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The periods of one sensor's ``readings`` labelled normal without a break: first and last
    reading (UTC) of each run of consecutive readings whose verdict is ``normal``."""
    if readings.empty or spans.empty:
        return []
    ordered = readings.sort_values("ts", kind="mergesort")
    normal = (_verdicts(ordered, spans) == "normal").to_numpy()
    ts = pd.to_datetime(ordered["ts"], utc=True)
    edges = np.diff(np.concatenate([[0], normal.astype(int), [0]]))
    firsts, lasts = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(ts.iloc[a], ts.iloc[b]) for a, b in zip(firsts, lasts, strict=True)]


def normal_periods(spans: pd.DataFrame) -> pd.DataFrame:
    """The spans labelled ``normal``."""
    return spans[spans[LABEL] == "normal"]
