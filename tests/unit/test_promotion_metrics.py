"""Metrics and the promotion rule of the model steps (pure functions, no MLflow)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from driftline.training.modeling import time_split
from driftline.training.promote import decide
from driftline.training.scoring import (
    classification_metrics,
    labelled,
    pr_auc,
    precision_recall_f1,
    promotion_score,
    recall_at_precision,
)

TRUTH = np.array([0, 0, 0, 0, 1, 1, 1, 1])
SCORES = np.array([0.1, 0.2, 0.3, 0.7, 0.6, 0.8, 0.9, 0.95])


def test_precision_recall_f1_at_half() -> None:
    # Predicted positive: 0.7 (false), 0.6, 0.8, 0.9, 0.95 (true) -> P 4/5, R 4/4.
    p, r, f1 = precision_recall_f1(TRUTH, SCORES)
    assert (p, r) == (0.8, 1.0)
    assert f1 == pytest.approx(2 * 0.8 / 1.8)


def test_undefined_metrics_are_zero() -> None:
    assert precision_recall_f1([0, 0], [0.1, 0.2]) == (0.0, 0.0, 0.0)
    assert pr_auc([0, 0], [0.1, 0.9]) == 0.0
    assert recall_at_precision([0, 0], [0.1, 0.9], 0.5) == 0.0


def test_recall_at_precision() -> None:
    # Thresholds above 0.7 give precision 1 and recall 3/4; lowering to 0.6 costs precision.
    assert recall_at_precision(TRUTH, SCORES, 1.0) == 0.75
    assert recall_at_precision(TRUTH, SCORES, 0.8) == 1.0
    # A model that ranks every anomaly lowest never reaches the floor.
    assert recall_at_precision(TRUTH, 1 - SCORES, 0.9) == 0.0


def test_pr_auc_perfect_and_ordering() -> None:
    assert pr_auc(TRUTH, TRUTH.astype(float)) == 1.0
    assert pr_auc(TRUTH, SCORES) > pr_auc(TRUTH, 1 - SCORES)


def test_label_other_than_one_is_normal() -> None:
    # Only label 1 is an anomaly; anything else counts as normal.
    assert precision_recall_f1([2, 1], [0.9, 0.9]) == (0.5, 1.0, pytest.approx(2 / 3))


def test_promotion_score_dispatch() -> None:
    assert promotion_score("f1", TRUTH, SCORES, 0.8) == precision_recall_f1(TRUTH, SCORES)[2]
    assert promotion_score("pr_auc", TRUTH, SCORES, 0.8) == pr_auc(TRUTH, SCORES)
    assert promotion_score("recall_at_precision", TRUTH, SCORES, 1.0) == 0.75
    with pytest.raises(ValueError):
        promotion_score("accuracy", TRUTH, SCORES, 0.8)  # type: ignore[arg-type]
    assert set(classification_metrics(TRUTH, SCORES)) == {"precision", "recall", "f1", "pr_auc"}


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError):
        precision_recall_f1([0, 1], [0.5])


def test_labelled_drops_unknown_labels() -> None:
    frame = pd.DataFrame({"label": [0.0, math.nan, 1.0]})
    assert labelled(frame)["label"].tolist() == [0.0, 1.0]


def test_time_split_holds_out_each_sensors_latest_rows() -> None:
    ts = pd.date_range("2026-01-01", periods=8, freq="s", tz="UTC")
    frame = pd.DataFrame(
        {"sensor_id": ["b"] * 8 + ["a"] * 4, "ts": list(ts[::-1]) + list(ts[:4]), "v": range(12)}
    )
    fit, held = time_split(frame, holdout=0.25)
    assert len(fit) == 9 and len(held) == 3
    for sensor, rows in held.groupby("sensor_id"):
        assert rows["ts"].min() > fit[fit.sensor_id == sensor]["ts"].max()


@pytest.mark.parametrize(
    ("challenger", "champion", "gain", "won", "why"),
    [
        (0.5, None, 0.0, True, "no champion"),
        (0.9, 0.8, 0.0, True, "beats"),
        (0.85, 0.8, 0.1, False, "does not beat"),
        (0.8, 0.8, 0.0, False, "does not beat"),
        (None, 0.8, 0.0, False, "no labelled readings"),
    ],
)
def test_decide(
    challenger: float | None, champion: float | None, gain: float, won: bool, why: str
) -> None:
    version = None if champion is None and challenger == 0.5 else "1"
    promoted, reason = decide("f1", "2", challenger, version, champion, gain)
    assert promoted is won
    assert why in reason


def test_decide_same_version_is_not_a_promotion() -> None:
    promoted, reason = decide("f1", "3", 0.9, "3", 0.9, 0.0)
    assert not promoted and "already" in reason
