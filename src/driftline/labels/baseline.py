"""Operators' ``normal`` labels as a sensor's baseline (``driftline baseline set --from-labels``).

A reading counts as labelled normal when the narrowest labelled range of its sensor covering it
says ``normal`` (as the training join decides: a ``fault`` or ``unsure`` region inside a task
whose verdict is ``normal`` leaves that region out).
"""

from __future__ import annotations

import pandas as pd

LABEL = "label"


def labelled_normal(readings: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``readings`` (sensor_id, ts) whose narrowest covering span is ``normal``;
    ``spans`` as ``training_join.label_spans`` returns them."""
    if readings.empty or spans.empty:
        return readings.iloc[0:0]
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
    return readings[verdict == "normal"]


def normal_periods(spans: pd.DataFrame) -> pd.DataFrame:
    """The spans labelled ``normal``."""
    return spans[spans[LABEL] == "normal"]
