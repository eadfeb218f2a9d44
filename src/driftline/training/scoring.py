"""Metrics of an anomaly model: the positive class is label 1 (anomaly).

Rows whose label is unknown (NaN) are never scored: callers drop them with ``labelled``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

PromotionMetric = Literal["f1", "recall_at_precision", "pr_auc"]
DECISION_THRESHOLD = 0.5


def labelled(frame: pd.DataFrame, label: str = "label") -> pd.DataFrame:
    """The rows whose label is known."""
    return frame[frame[label].notna()]


def _arrays(y_true: object, y_score: object) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true, dtype="float64").ravel()
    score = np.asarray(y_score, dtype="float64").ravel()
    if truth.shape != score.shape:
        raise ValueError(f"{truth.shape[0]} labels but {score.shape[0]} scores")
    return (truth == 1).astype("int64"), score


def precision_recall_f1(
    y_true: object, y_score: object, threshold: float = DECISION_THRESHOLD
) -> tuple[float, float, float]:
    """Precision, recall and F1 of ``score >= threshold``; 0.0 where undefined."""
    truth, score = _arrays(y_true, y_score)
    predicted = score >= threshold
    tp = int(np.sum(predicted & (truth == 1)))
    fp = int(np.sum(predicted & (truth == 0)))
    fn = int(np.sum(~predicted & (truth == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pr_auc(y_true: object, y_score: object) -> float:
    """Area under the precision-recall curve (average precision); 0.0 without positives."""
    from sklearn.metrics import average_precision_score

    truth, score = _arrays(y_true, y_score)
    if truth.sum() == 0:
        return 0.0
    return float(average_precision_score(truth, score))


def recall_at_precision(y_true: object, y_score: object, min_precision: float) -> float:
    """Highest recall of any threshold whose precision is at least ``min_precision``."""
    from sklearn.metrics import precision_recall_curve

    truth, score = _arrays(y_true, y_score)
    if truth.sum() == 0:
        return 0.0
    precision, recall, _ = precision_recall_curve(truth, score)
    ok = precision >= min_precision
    # The curve's last point (recall 0, precision 1) is not a real threshold.
    ok[-1] = False
    return float(recall[ok].max()) if ok.any() else 0.0


def classification_metrics(y_true: object, y_score: object) -> dict[str, float]:
    """precision, recall, f1 (at the 0.5 threshold) and pr_auc."""
    precision, recall, f1 = precision_recall_f1(y_true, y_score)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "pr_auc": pr_auc(y_true, y_score),
    }


def promotion_score(
    metric: PromotionMetric, y_true: object, y_score: object, min_precision: float
) -> float:
    """The business metric a challenger must beat the champion on."""
    if metric == "f1":
        return precision_recall_f1(y_true, y_score)[2]
    if metric == "pr_auc":
        return pr_auc(y_true, y_score)
    if metric == "recall_at_precision":
        return recall_at_precision(y_true, y_score, min_precision)
    raise ValueError(f"unknown promotion metric {metric!r}")
