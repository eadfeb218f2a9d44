"""The baselines the train and tune steps judge each sensor against: its normal readings only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.core.settings import Settings
from driftline.training.anomaly_data import recordings, sensor_baselines

MEASUREMENTS = ["flow", "vibration"]
START = datetime(2026, 1, 1, tzinfo=UTC)


def pump(sensor: str, n: int, faults: slice) -> pd.DataFrame:
    """Readings a second apart; the rows of ``faults`` vibrate 6 stds high, labelled 1."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "sensor_id": sensor,
            "ts": pd.to_datetime([START + timedelta(seconds=i) for i in range(n)], utc=True),
            "label": 0.0,
            "flow": 32 + rng.normal(0, 0.5, n),
            "vibration": 0.2 + rng.normal(0, 0.01, n),
        }
    )
    frame.loc[frame.index[faults], "vibration"] += 0.06
    frame.loc[frame.index[faults], "label"] = 1.0
    return frame


def test_labelled_faults_are_left_out_of_a_baseline(tmp_path: Path) -> None:
    frame = pump("pump-1", 200, slice(10, 20))
    settings = Settings(data_dir=tmp_path, baseline_readings=50)
    baseline = sensor_baselines(settings, frame, MEASUREMENTS)["pump-1"]
    normal = frame[frame["label"] == 0]
    assert baseline.count == 50
    assert np.allclose(baseline.values(), normal[MEASUREMENTS].to_numpy()[:50])
    assert baseline.std[1] < 0.012  # the faults' 0.06 would have more than doubled it
    # Scoring starts after the baseline's last row: the faults inside its span are never scored.
    (recording,) = recordings(frame, {"pump-1": baseline}, MEASUREMENTS)
    assert recording.scored_from == 60


def test_a_short_episode_takes_the_first_quarter_of_its_normal_rows(tmp_path: Path) -> None:
    frame = pd.concat([pump("pump-1", 120, slice(0, 20)), pump("pump-2", 120, slice(50, 60))])
    settings = Settings(data_dir=tmp_path, baseline_readings=400)
    made = sensor_baselines(settings, frame, MEASUREMENTS)
    assert {s: b.count for s, b in made.items()} == {"pump-1": 25, "pump-2": 27}
    assert not np.any(made["pump-1"].values()[:, 1] > 0.24)
