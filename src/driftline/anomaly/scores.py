"""SKAB's outlier-detection metrics over pooled rows, as its leaderboard computes them: what the
model search (``driftline.anomaly.automl``) ranks candidates by. NAB scoring of changepoint
alarms is a benchmark's concern (bench/nab.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OutlierScore:
    """SKAB's outlier-detection metrics over pooled rows: F1 = TP / (TP + (FP + FN) / 2),
    FAR = FP / (FP + TN) * 100 (false alarm rate, %), MAR = FN / (FN + TP) * 100 (missed, %)."""

    f1: float
    far: float
    mar: float
    rows: int


def outlier_score(y_true: object, alarms: object) -> OutlierScore:
    """Each rate is 0.0 where its denominator is 0 (no anomalies, no normal rows)."""
    truth = np.asarray(y_true, dtype="float64").ravel() == 1
    alarm = np.asarray(alarms).ravel().astype(bool)
    if truth.shape != alarm.shape:
        raise ValueError(f"{truth.size} labels but {alarm.size} alarms")
    tp = int(np.sum(alarm & truth))
    fp = int(np.sum(alarm & ~truth))
    fn = int(np.sum(~alarm & truth))
    tn = int(np.sum(~alarm & ~truth))
    f1 = tp / (tp + (fp + fn) / 2) if tp + fp + fn else 0.0
    far = 100.0 * fp / (fp + tn) if fp + tn else 0.0
    mar = 100.0 * fn / (fn + tp) if fn + tp else 0.0
    return OutlierScore(f1, far, mar, int(truth.size))
