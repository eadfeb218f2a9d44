"""An anomaly model: its family, feature recipe, parameters and decision threshold, as one.

Every family scores a sensor's readings against that sensor's baseline through the same
calls (``fit``, ``score``, ``predict``, ``save``, ``load``), so training, the benchmark and
serving need not know which family they hold. Label-free families learn nothing across
sensors: each sensor's detector is built from its own baseline. The supervised family
(XGBoost) learns from labelled recordings, on the same baseline-relative features.

A score is causal: row ``i``'s score uses readings ``<= i`` only (features and the smoothing
of the score both look back, never ahead).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from driftline.anomaly.baseline import SensorBaseline
from driftline.anomaly.detectors import Mset, PcaT2Q, score_many
from driftline.anomaly.features import FeatureRecipe, causal_mean, relative_features
from driftline.anomaly.recordings import Recording

if TYPE_CHECKING:
    from xgboost import XGBClassifier

Family = Literal["pca-t2q", "mset", "xgboost"]
FAMILIES: tuple[Family, ...] = ("pca-t2q", "mset", "xgboost")
LABEL_FREE: frozenset[str] = frozenset({"pca-t2q", "mset"})
SPEC_FILE = "model.json"
BOOSTER_FILE = "booster.json"
XGB_DEFAULTS: dict[str, Any] = {
    "max_depth": 3,
    "n_estimators": 150,
    "learning_rate": 0.1,
    "subsample": 0.9,
    "colsample_bytree": 0.8,
    "min_child_weight": 1.0,
}


class ModelSpec(BaseModel):
    """What a model is; MLflow records it as the model's parameters."""

    model_config = ConfigDict(frozen=True)

    family: Family
    recipe: FeatureRecipe = Field(default_factory=FeatureRecipe)
    params: dict[str, Any] = Field(default_factory=dict)
    threshold: float = 1.0
    smooth: int = Field(1, ge=1, description="rows the score is averaged over, looking back")


def _detector(family: str, features: np.ndarray, params: dict[str, Any]) -> PcaT2Q | Mset:
    if family == "pca-t2q":
        return PcaT2Q.fit(features, **params)
    if family == "mset":
        return Mset.fit(features, **params)
    raise ValueError(f"{family} is not a label-free family")


class AnomalyModel:
    def __init__(self, spec: ModelSpec, booster: XGBClassifier | None = None) -> None:
        if spec.family == "xgboost" and booster is None:
            raise ValueError("an xgboost model needs its fitted booster")
        self.spec = spec
        self.booster = booster
        self._detectors: dict[str, PcaT2Q | Mset] = {}

    @property
    def label_free(self) -> bool:
        return self.spec.family in LABEL_FREE

    @classmethod
    def fit(cls, spec: ModelSpec, recordings: list[Recording]) -> AnomalyModel:
        """Label-free families need no training data; XGBoost trains on labelled recordings."""
        if spec.family in LABEL_FREE:
            return cls(spec)
        return cls(spec, fit_booster(spec, [(training_features(spec, r), r) for r in recordings]))

    def raw_scores(self, baseline: SensorBaseline, features: np.ndarray) -> np.ndarray:
        """Unsmoothed scores of feature rows (from ``relative_features``)."""
        if self.booster is not None:
            return self.booster.predict_proba(features)[:, 1]
        key = baseline.version
        if key not in self._detectors:
            reference = relative_features(baseline.values(), baseline, self.spec.recipe)
            start = min(self.spec.recipe.history() - 1, len(reference) - 4)
            self._detectors[key] = _detector(self.spec.family, reference[start:], self.spec.params)
        return score_many(self._detectors[key], features)

    def smoothed(self, raw: np.ndarray) -> np.ndarray:
        if self.spec.smooth <= 1:
            return raw
        return causal_mean(raw[:, None], self.spec.smooth)[:, 0]

    def score(self, baseline: SensorBaseline, values: np.ndarray) -> np.ndarray:
        """Anomaly scores of one sensor's readings (n, its baseline's measurements) in time
        order; the higher, the more anomalous; ``>= spec.threshold`` is an alarm."""
        features = relative_features(values, baseline, self.spec.recipe)
        return self.smoothed(self.raw_scores(baseline, features))

    def predict(self, baseline: SensorBaseline, values: np.ndarray) -> np.ndarray:
        return self.score(baseline, values) >= self.spec.threshold

    def with_spec(self, **changes: Any) -> AnomalyModel:
        """The same fitted model with other spec fields (threshold, smoothing)."""
        return AnomalyModel(self.spec.model_copy(update=changes), self.booster)

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / SPEC_FILE).write_text(self.spec.model_dump_json(indent=2))
        if self.booster is not None:
            self.booster.save_model(directory / BOOSTER_FILE)
        return directory

    @classmethod
    def load(cls, directory: Path) -> AnomalyModel:
        directory = Path(directory)
        spec = ModelSpec.model_validate_json((directory / SPEC_FILE).read_text())
        booster = None
        if spec.family == "xgboost":
            from xgboost import XGBClassifier

            booster = XGBClassifier()
            booster.load_model(directory / BOOSTER_FILE)
        return cls(spec, booster)


def training_features(spec: ModelSpec, recording: Recording) -> np.ndarray:
    return relative_features(recording.values, recording.baseline, spec.recipe)


def fit_booster(
    spec: ModelSpec, data: list[tuple[np.ndarray, Recording]], stride: int = 2
) -> XGBClassifier:
    """XGBoost on every ``stride``-th row of the labelled recordings (neighbouring rows are
    nearly equal), from each recording's first full feature window on."""
    from xgboost import XGBClassifier

    start = spec.recipe.history() - 1
    xs, ys = [], []
    for features, recording in data:
        if recording.labels is None:
            raise ValueError(f"recording {recording.name} has no labels for the xgboost family")
        xs.append(features[start::stride])
        ys.append(recording.labels[start::stride])
    y = np.concatenate(ys)
    if y.min() == y.max():
        raise ValueError("the xgboost family needs both normal and anomalous rows")
    params = {**XGB_DEFAULTS, **spec.params}
    booster = XGBClassifier(**params, n_jobs=1, tree_method="hist", verbosity=0)
    booster.fit(np.vstack(xs), y)
    return booster


def describe(spec: ModelSpec) -> str:
    """One line naming the model: family, windows, parameters, threshold."""
    params = ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in sorted(spec.params.items())
    )
    windows = ",".join(str(w) for w in spec.recipe.windows) or "-"
    extra = json.dumps(
        {
            "raw": spec.recipe.raw,
            "spread": spec.recipe.spread,
            "measurements": list(spec.recipe.measurements or ["all"]),
        }
    )
    return (
        f"{spec.family} windows={windows} {extra} [{params}] smooth={spec.smooth} "
        f"threshold={spec.threshold:.3g}"
    )
