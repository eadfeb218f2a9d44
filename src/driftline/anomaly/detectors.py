"""Label-free per-sensor detectors, built from a sensor's baseline features alone.

Both are implemented from their published descriptions (not from any benchmark's code):

- ``PcaT2Q``: principal component analysis of the baseline; Hotelling's T-squared in the
  retained components and Q (squared prediction error) in the rest. With ``limits="theory"``
  the control limits are the textbook ones (T-squared from the F distribution, Q by Jackson and
  Mudholkar) at significance ``alpha``; otherwise the ``quantile`` of each statistic over the
  held-out tail of the baseline.
- ``Mset``: the multivariate state estimation technique: a memory matrix ``D`` of baseline
  states and a nonlinear similarity operator ``s``; a reading ``x`` is estimated as
  ``D (s(D, D) + ridge I)^-1 s(D, x)`` (weights normalised to sum 1) and scored by its
  squared residual, in units of the residuals of the held-out baseline tail.

Scores are distances in units of the limit (the square root of each statistic over its
limit): above 1 is outside what the baseline showed. ``score_many`` scores many rows at once
(the same scores, to rounding, in less time: the benchmark and the search score thousands).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

CALIBRATION_SHARE = 0.25  # the baseline's last quarter calibrates the limits, held out
SCORE_CHUNK_ROWS = 4096  # rows scored together: bounds the (memory, rows) similarity matrix


def split_baseline(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit rows (the first 75 %) and calibration rows (the held-out last 25 %)."""
    cut = max(2, int(round(len(features) * (1 - CALIBRATION_SHARE))))
    return features[:cut], features[cut:] if cut < len(features) else features[-2:]


@dataclass(frozen=True)
class PcaT2Q:
    centre: np.ndarray
    components: np.ndarray  # (k, features), retained
    eigenvalues: np.ndarray  # (k,)
    t2_limit: float
    q_limit: float

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        variance: float = 0.9,
        limits: str = "quantile",
        quantile: float = 0.99,
        alpha: float = 0.01,
    ) -> PcaT2Q:
        fit_rows, calibration = (
            (features, features) if limits == "theory" else split_baseline(features)
        )
        centre = fit_rows.mean(axis=0)
        _, singular, vt = np.linalg.svd(fit_rows - centre, full_matrices=False)
        eig = singular**2 / max(len(fit_rows) - 1, 1)
        share = np.cumsum(eig) / max(eig.sum(), 1e-12)
        k = min(int(np.searchsorted(share, variance)) + 1, len(eig))
        eig_kept = np.maximum(eig[:k], 1e-9)
        model = cls(centre, vt[:k], eig_kept, 1.0, 1.0)
        if limits == "theory":
            n, rest = len(fit_rows), eig[k:]
            t2 = k * (n - 1) * (n + 1) / (n * max(n - k, 1)) * stats.f.ppf(1 - alpha, k, n - k)
            q = _jackson_mudholkar(rest, alpha)
        else:
            t2_cal, q_cal = model.statistics(calibration)
            t2, q = float(np.quantile(t2_cal, quantile)), float(np.quantile(q_cal, quantile))
        return cls(centre, vt[:k], eig_kept, max(float(t2), 1e-9), max(float(q), 1e-9))

    def statistics(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        centred = features - self.centre
        scores = centred @ self.components.T
        t2 = np.sum(scores**2 / self.eigenvalues, axis=1)
        q = np.sum((centred - scores @ self.components) ** 2, axis=1)
        return t2, q

    def score(self, features: np.ndarray) -> np.ndarray:
        t2, q = self.statistics(features)
        return np.sqrt(np.maximum(t2 / self.t2_limit, q / self.q_limit))


def _jackson_mudholkar(residual_eigenvalues: np.ndarray, alpha: float) -> float:
    theta = [float(np.sum(residual_eigenvalues**i)) for i in (1, 2, 3)]
    if theta[0] <= 1e-12 or theta[1] <= 1e-12:
        return 1e-9
    h0 = 1 - 2 * theta[0] * theta[2] / (3 * theta[1] ** 2)
    c = stats.norm.ppf(1 - alpha)
    term = (
        c * np.sqrt(2 * theta[1] * h0**2) / theta[0] + 1 + theta[1] * h0 * (h0 - 1) / theta[0] ** 2
    )
    return float(theta[0] * max(term, 1e-12) ** (1 / h0))


@dataclass(frozen=True)
class Mset:
    memory: np.ndarray  # (m, features)
    inverse: np.ndarray  # (m, m)
    bandwidth: float
    limit: float
    # Computed once per detector, for residuals_many.
    _projection: np.ndarray = field(init=False, repr=False, compare=False)
    _weight_sums: np.ndarray = field(init=False, repr=False, compare=False)
    _memory_sq: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_projection", self.inverse.T @ self.memory)
        object.__setattr__(self, "_weight_sums", self.inverse.sum(axis=0))
        object.__setattr__(self, "_memory_sq", np.sum(self.memory**2, axis=1))

    @classmethod
    def fit(
        cls,
        features: np.ndarray,
        memory_size: int = 100,
        bandwidth: float = 1.0,
        ridge: float = 1e-3,
        quantile: float = 0.99,
    ) -> Mset:
        fit_rows, calibration = split_baseline(features)
        memory = fit_rows[_memory_rows(fit_rows, memory_size)]
        width = bandwidth * np.sqrt(features.shape[1])
        gram = _similarity(memory, memory, width) + ridge * np.eye(len(memory))
        model = cls(memory, np.linalg.pinv(gram), width, 1.0)
        limit = float(np.quantile(model.residuals(calibration), quantile))
        return cls(memory, model.inverse, width, max(limit, 1e-9))

    def residuals(self, features: np.ndarray) -> np.ndarray:
        weights = self.inverse @ _similarity(self.memory, features, self.bandwidth)
        total = weights.sum(axis=0)
        weights = weights / np.where(np.abs(total) > 1e-12, total, 1.0)
        estimate = weights.T @ self.memory
        return np.sum((features - estimate) ** 2, axis=1)

    def score(self, features: np.ndarray) -> np.ndarray:
        return np.sqrt(self.residuals(features) / self.limit)

    def residuals_many(self, features: np.ndarray) -> np.ndarray:
        """``residuals`` with the memory side of the estimate computed once: the estimate
        ``(W / colsum W).T @ D`` with ``W = inverse @ s(D, x)`` equals
        ``s(D, x).T @ (inverse.T @ D) / (colsum(inverse) @ s(D, x))``, which skips the
        (memory x memory x rows) product."""
        # _similarity computed in place: no (memory, rows) temporaries beyond the result.
        similarity = self.memory @ features.T
        similarity *= -2.0
        similarity += self._memory_sq[:, None]
        similarity += np.sum(features**2, axis=1)[None, :]
        np.maximum(similarity, 0.0, out=similarity)
        similarity *= -1.0 / (2.0 * self.bandwidth**2)
        np.exp(similarity, out=similarity)
        total = self._weight_sums @ similarity
        estimate = similarity.T @ self._projection
        estimate /= np.where(np.abs(total) > 1e-12, total, 1.0)[:, None]
        return np.sum((features - estimate) ** 2, axis=1)


def score_many(
    detector: PcaT2Q | Mset, features: np.ndarray, chunk: int = SCORE_CHUNK_ROWS
) -> np.ndarray:
    """A detector's scores of many feature rows, ``chunk`` rows at a time."""
    parts: list[np.ndarray] = []
    for start in range(0, len(features), chunk):
        rows = features[start : start + chunk]
        if isinstance(detector, Mset):
            parts.append(np.sqrt(detector.residuals_many(rows) / detector.limit))
        else:
            parts.append(detector.score(rows))
    return np.concatenate(parts) if parts else np.empty(0)


def _memory_rows(features: np.ndarray, size: int) -> np.ndarray:
    """Each feature's minimum and maximum state, then evenly spaced states up to ``size``."""
    picked = set(np.argmin(features, axis=0).tolist()) | set(np.argmax(features, axis=0).tolist())
    spare = max(size - len(picked), 0)
    picked |= set(np.linspace(0, len(features) - 1, spare).round().astype(int).tolist())
    return np.array(sorted(picked), dtype=int)


def _similarity(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    """Gaussian similarity of each row of ``a`` to each row of ``b``: (len(a), len(b))."""
    sq = np.sum(a**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2.0 * a @ b.T
    return np.exp(-np.maximum(sq, 0.0) / (2.0 * width**2))
