"""Reference detectors of bench/model_quality.py, and the leaderboard's published rows.

Each reference is fitted on a recording's own baseline rows (label-free) or, for the
one-threshold rule, on the training recordings; all are causal. Implemented from their
published descriptions, not from SKAB's (GPL) code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftline.anomaly.features import FeatureRecipe, causal_mean
from driftline.anomaly.model import AnomalyModel, ModelSpec
from driftline.anomaly.recordings import Recording
from driftline.anomaly.scores import outlier_score

# SKAB's outlier leaderboard (upstream README, all recordings; not computed here).
CITED: list[dict[str, object]] = [
    {"name": "Conv-AE", "f1": 0.78, "far": 13.55, "mar": 28.02, "pr_auc": None},
    {"name": "MSET", "f1": 0.78, "far": 39.73, "mar": 14.13, "pr_auc": None},
    {"name": "T-squared+Q (PCA-based)", "f1": 0.76, "far": 26.62, "mar": 24.92, "pr_auc": None},
    {"name": "LSTM-AE", "f1": 0.74, "far": 29.96, "mar": 25.92, "pr_auc": None},
    {"name": "T-squared", "f1": 0.66, "far": 19.21, "mar": 42.6, "pr_auc": None},
    {"name": "Isolation forest", "f1": 0.29, "far": 2.56, "mar": 82.89, "pr_auc": None},
]

RAW = FeatureRecipe(raw=True, windows=())
# SKAB's T-squared+Q: PCA of the standardised training part, textbook control limits at 1 %,
# an alarm when either statistic is over its limit.
T2Q = AnomalyModel(
    ModelSpec(family="pca-t2q", recipe=RAW, params={"variance": 0.85, "limits": "theory"})
)
# MSET on the standardised readings, limit = 99 % of the held-out baseline tail's residuals;
# SKAB's version smooths over the next 29 rows, this one over the last 30 (no look-ahead).
MSET = AnomalyModel(ModelSpec(family="mset", recipe=RAW, smooth=30))


def skab_t2q(r: Recording) -> tuple[np.ndarray, np.ndarray]:
    s = T2Q.score(r.baseline, r.values)
    return s >= 1.0, s


def skab_mset(r: Recording) -> tuple[np.ndarray, np.ndarray]:
    s = MSET.score(r.baseline, r.values)
    return s >= 1.0, s


def robust_z_alarms(r: Recording) -> tuple[np.ndarray, np.ndarray]:
    """Median/MAD of the baseline rows, max |z| over measurements, alarm above the baseline's
    99 % quantile of it, then a causal rolling median of 5 alarms (3 of the last 5)."""
    b = r.baseline
    scale = 1.4826 * np.asarray(b.mad)
    scale = np.where(scale > 0, scale, b.scale())
    z = lambda v: np.max(np.abs((v - np.asarray(b.median)) / scale), axis=1)  # noqa: E731
    score = z(r.values)
    alarms = (score > np.quantile(z(b.values()), 0.99)).astype(float)
    votes = causal_mean(alarms[:, None], 5)[:, 0]
    return votes > 0.5, score


@dataclass(frozen=True)
class RuleFit:
    """One measurement, one cut, one direction: the best F1 on the training rows."""

    column: int
    name: str
    cut: float
    sign: int

    def alarms(self, values: np.ndarray) -> np.ndarray:
        return self.sign * (values[:, self.column] - self.cut) >= 0

    def describe(self) -> str:
        return f"{self.name} {'>=' if self.sign > 0 else '<='} {self.cut:.4g} (absolute value)"


def fit_rule(train: list[Recording], measurements: list[str]) -> RuleFit:
    values = np.vstack([r.values[r.scored_from :] for r in train])
    y = np.concatenate([r.scored_labels() for r in train])
    best = (-1.0, RuleFit(0, measurements[0], 0.0, 1))
    for j, name in enumerate(measurements):
        for cut in np.unique(np.quantile(values[:, j], np.linspace(0.01, 0.99, 99))):
            for sign in (1, -1):
                rule = RuleFit(j, name, float(cut), sign)
                f1 = outlier_score(y, rule.alarms(values)).f1
                if f1 > best[0]:
                    best = (f1, rule)
    return best[1]
