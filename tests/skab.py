"""SKAB recordings landed in the raw store as wire-format readings (with their labels)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd

from driftline.core.profile import load_profile
from driftline.core.settings import DEFAULT_PROFILE
from driftline.store.raw_store import RawStore
from driftline.streaming.messages import Message


def land_skab(
    store: RawStore, paths: list[Path], start: datetime, sensor: str, flip: bool = False
) -> datetime:
    """SKAB rows as wire-format readings from ``start`` on, one a second; returns the end."""
    features = load_profile(DEFAULT_PROFILE).features
    messages, ts, offset = [], start, 0
    for path in paths:
        frame = pd.read_csv(path, sep=";")
        for row in frame.itertuples(index=False):
            label = int(row.anomaly)
            doc = {
                "sensor_id": sensor,
                "ts": ts.isoformat(),
                "seq": offset,
                "values": {f: float(v) for f, v in zip(features, row[1:9], strict=True)},
                "label": 1 - label if flip else label,
            }
            messages.append(Message("raw", 0, offset, sensor.encode(), orjson.dumps(doc)))
            ts += timedelta(seconds=1)
            offset += 1
    for i in range(0, len(messages), 2000):
        store.add_messages(messages[i : i + 2000])
    return ts
