"""Figures logged with each training run (matplotlib's object API: no global backend state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def pr_curve_figure(y_true: np.ndarray, y_score: np.ndarray, title: str) -> Figure:
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve

    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    if np.sum(y_true == 1):
        precision, recall, _ = precision_recall_curve(y_true, y_score)
        ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.05), title=title)
    fig.tight_layout()
    return fig


def importance_figure(names: list[str], importances: np.ndarray, top: int = 20) -> Figure:
    from matplotlib.figure import Figure

    order = np.argsort(importances)[::-1][:top][::-1]
    fig = Figure(figsize=(6, 0.3 * len(order) + 1.2))
    ax = fig.add_subplot()
    ax.barh([names[i] for i in order], importances[order])
    ax.set(xlabel="importance (gain share)", title="feature importance")
    fig.tight_layout()
    return fig
