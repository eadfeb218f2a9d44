"""Synthetic pump recordings with a known fault, for the anomaly model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftline.anomaly.recordings import Recording, recording_from_frame

MEASUREMENTS = ["flow", "current", "temperature"]
FAULT = slice(600, 850)


def pump(seed: int, fault: bool = True, level: float = 1.0) -> Recording:
    """1,000 readings of a pump at operating point ``level`` (flow and current scale with it);
    with ``fault``, flow drops by 2 of its stds in rows 600-850 (labelled 1). The first 400
    rows are its baseline."""
    rng = np.random.default_rng(seed)
    n = 1000
    flow = 32 * level + rng.normal(0, 0.5 * level, n)
    labels = np.zeros(n)
    if fault:
        flow[FAULT] -= 1.0 * level
        labels[FAULT] = 1
    frame = pd.DataFrame(
        {
            "flow": flow,
            "current": 1.0 * level + rng.normal(0, 0.1 * level, n),
            "temperature": 70 + rng.normal(0, 0.3, n),
            "anomaly": labels,
        }
    )
    return recording_from_frame(f"pump-{seed}", frame, MEASUREMENTS, 400)
