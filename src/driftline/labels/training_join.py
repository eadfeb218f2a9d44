"""Operators' labels onto training readings: they win over the simulator's or a file's labels.

Each reading inside a labelled range of its sensor takes that range's label (``fault`` 1,
``normal`` 0; ``unsure`` leaves the reading as it was); where ranges overlap, the narrowest wins
(a region inside a task beats the task's verdict). The label rows joined are saved beside the
dataset, under its tag (``DataRepo.save_dataset``), so a dataset version pins its labels.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, and_, inspect, select

from driftline.labels.store import labels
from driftline.store.raw_store import naive_utc

LABEL_VALUES = {"fault": 1.0, "normal": 0.0}


SPAN_COLUMNS = ["sensor_id", "start_ts", "end_ts", "label"]
# What a dataset version pins of each label row: all but ``published``, which changes as the
# labeler publishes and would make a retried step's labels differ.
PINNED = [c for c in labels.c if c.name != "published"]
TIMES = ["start_ts", "end_ts", "annotated_at", "recorded_at"]


def labels_touching(
    conn: Connection,
    start: datetime | None,
    end: datetime | None,
    sensors: list[str] | None,
) -> pd.DataFrame:
    """The label rows whose range touches [start, end] (of ``sensors``, all if None), by
    ``label_id``, times naive UTC as stored; empty when the database has no labels table
    (labeling never ran there)."""
    columns = [c.name for c in PINNED]
    if not inspect(conn).has_table(labels.name):
        return pd.DataFrame(columns=columns)
    query = select(*PINNED).order_by(labels.c.label_id)
    conditions = []
    if start is not None:
        conditions.append(labels.c.end_ts >= naive_utc(start))
    if end is not None:
        conditions.append(labels.c.start_ts <= naive_utc(end))
    if sensors is not None:
        conditions.append(labels.c.sensor_id.in_(sensors))
    if conditions:
        query = query.where(and_(*conditions))
    return pd.DataFrame(conn.execute(query).all(), columns=columns)


def label_spans(
    conn: Connection,
    start: datetime | None,
    end: datetime | None,
    sensors: list[str] | None,
) -> pd.DataFrame:
    """Labelled ranges that touch [start, end] (sensor_id, start_ts, end_ts, label)."""
    return labels_touching(conn, start, end, sensors)[SPAN_COLUMNS]


def pinned_labels(rows: pd.DataFrame) -> pd.DataFrame:
    """``labels_touching`` as a dataset version keeps them: times as UTC, whole numbers as int64."""
    out = rows.reset_index(drop=True).copy()
    for column in TIMES:
        out[column] = pd.to_datetime(out[column]).dt.tz_localize("UTC")
    for column in ("ls_task_id", "annotation_id"):
        out[column] = out[column].astype("int64")
    return out


def apply_operator_labels(readings: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """``readings`` (sensor_id, ts in UTC, label) with operators' labels applied."""
    if readings.empty or spans.empty:
        return readings
    out = readings.copy()
    ts = pd.to_datetime(out["ts"], utc=True)
    widest_first = spans.assign(width=spans["end_ts"] - spans["start_ts"]).sort_values(
        "width", ascending=False
    )
    for span in widest_first.itertuples():
        value = LABEL_VALUES.get(str(span.label))
        if value is None:
            continue
        inside = (
            (out["sensor_id"] == span.sensor_id)
            & (ts >= pd.Timestamp(span.start_ts, tz="UTC"))
            & (ts <= pd.Timestamp(span.end_ts, tz="UTC"))
        )
        out.loc[inside, "label"] = value
    return out
