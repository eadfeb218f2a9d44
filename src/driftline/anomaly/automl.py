"""AutoML: search families, feature windows, parameters and the threshold by group-wise CV.

Whole recordings (sensors) are held out, never rows of one recording on both sides: the
training recordings are dealt into ``folds`` groups; a supervised trial trains on the other
groups and scores the held-out one; a label-free trial scores each recording against its own
baseline. Each group is alarmed at the threshold chosen on the other groups (best F1 among
thresholds whose false-alarm rate stays within ``max_far``): a threshold must carry over to
recordings it was not chosen on. A trial is ranked by the median recording's F1 of those
out-of-fold alarms (``cv_typical_f1``), then by their pooled F1: one recording that a candidate
happens to fit well or badly cannot swing the choice. The spec keeps the threshold chosen on
all training recordings.

``run_search`` runs the trials on Ray Tune with Optuna's TPE as the search algorithm
(``automl_ray``) over ``automl_space.SearchSpace``: each family's defaults first, then a few
trials of each family in turn, then Optuna's choice, until the time budget or the trial count
runs out (Optuna steers by the pooled F1, the smoother signal). ``SearchResult.pick`` compares
the families at equal effort; the winner is then trained on every training recording.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.anomaly.features import FeatureRecipe, relative_features
from driftline.anomaly.model import (
    FAMILIES,
    LABEL_FREE,
    AnomalyModel,
    Family,
    ModelSpec,
    fit_booster,
)
from driftline.anomaly.recordings import Recording
from driftline.anomaly.scores import OutlierScore, outlier_score

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    spec: ModelSpec
    score: OutlierScore
    seconds: float
    searcher: str = ""
    trial_id: str = ""  # the searcher's name for it (Ray Tune's trial id)
    typical_f1: float | None = None  # cv_typical_f1; None: rank by the pooled F1 alone

    def rank(self) -> tuple[float, float, float]:
        """What the selection maximises: the median recording's CV F1, then the pooled F1,
        then the fewest false alarms."""
        typical = self.score.f1 if self.typical_f1 is None else self.typical_f1
        return (typical, self.score.f1, -self.score.far)


def cv_typical_f1(labels: Sequence[np.ndarray], alarms: Sequence[np.ndarray]) -> float:
    """The median over recordings of each one's F1 (its out-of-fold alarms against its labels).

    Only recordings with anomalous rows count (a recording without any has F1 0 whatever the
    alarms); their false alarms still bound the threshold through ``max_far``. Without any
    such recording, the pooled F1."""
    f1s = [outlier_score(y, a).f1 for y, a in zip(labels, alarms, strict=True) if np.any(y == 1)]
    if not f1s:
        return outlier_score(np.concatenate(labels), np.concatenate(alarms)).f1
    return float(np.median(f1s))


@dataclass
class SearchResult:
    trials: list[Trial] = field(default_factory=list)

    def best(self, families: Sequence[str] | None = None) -> Trial:
        eligible = [t for t in self.trials if families is None or t.spec.family in families]
        if not eligible:
            raise ValueError(f"no trial of families {families}")
        return max(eligible, key=Trial.rank)

    def pick(self, families: Sequence[str] | None = None) -> Trial:
        """The AutoML pick: the family that wins at equal search effort, then its best trial.

        Optuna gives the families it favours more trials (and a cheap family fits more in
        the same time), and the best of many noisy CV scores is optimistic; families are
        therefore compared on their first ``k`` trials each (in the order the searcher created
        them), ``k`` the fewest any family had: at least 1 + ``WARMUP_ROUNDS`` when the budget
        lets the families' turns finish. ``families`` restricts the choice to those (the
        benchmark's best label-free row)."""
        by_family: dict[str, list[Trial]] = {}
        for t in self.trials:
            if families is None or t.spec.family in families:
                by_family.setdefault(t.spec.family, []).append(t)
        if not by_family:
            raise ValueError(f"no trial of families {families}")
        k = min(len(ts) for ts in by_family.values())
        family = max(by_family, key=lambda f: max(t.rank() for t in by_family[f][:k]))
        return self.best([family])


def defaults(family: Family, measurements: tuple[str, ...] | None = None) -> ModelSpec:
    """Each family's starting point."""
    if family == "xgboost":
        recipe = FeatureRecipe(raw=True, windows=(5, 15, 30, 60), spread=True)
        return ModelSpec(family=family, recipe=recipe, threshold=0.5, smooth=5)
    if family == "pca-t2q":
        recipe = FeatureRecipe(raw=False, windows=(10,), measurements=measurements)
        return ModelSpec(
            family=family, recipe=recipe, params={"variance": 0.95}, threshold=1.5, smooth=20
        )
    # MSET's residuals have the heavier tail: a wider untuned margin.
    recipe = FeatureRecipe(raw=False, windows=(30,), measurements=measurements)
    return ModelSpec(
        family=family, recipe=recipe, params={"bandwidth": 2.0}, threshold=3.0, smooth=20
    )


def best_threshold(
    y: np.ndarray, scores: np.ndarray, max_far: float = 100.0
) -> tuple[float, OutlierScore]:
    """The threshold (alarm: score >= it) with the best F1 whose FAR is at most ``max_far`` %;
    without one, the threshold with the lowest FAR."""
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], (y[order] == 1)
    positives, negatives = int(t.sum()), int((~t).sum())
    tp, fp = np.cumsum(t), np.cumsum(~t)
    # Only cut between distinct scores: equal scores alarm together.
    last = np.r_[s[1:] != s[:-1], True]
    # The first candidate raises no alarm at all.
    tp = np.r_[0, tp[last]]
    fp = np.r_[0, fp[last]]
    cut = np.r_[np.nextafter(s[0], np.inf) if len(s) else 0.0, s[last]]
    fn = positives - tp
    f1 = tp / np.maximum(tp + (fp + fn) / 2, 1e-12)
    far = 100.0 * fp / max(negatives, 1)
    ok = far <= max_far
    i = int(np.argmax(np.where(ok, f1, -1.0))) if ok.any() else int(np.argmin(far))
    threshold = float(cut[i])
    return threshold, outlier_score(y, scores >= threshold)


class Search:
    """One search over one set of training recordings (features cached across trials)."""

    def __init__(self, recordings: list[Recording], folds: int = 4, max_far: float = 20.0):
        if len(recordings) < 2:
            raise ValueError("group-wise CV needs at least 2 training recordings")
        if any(r.labels is None for r in recordings):
            raise ValueError("AutoML selection needs labelled recordings")
        self.recordings = recordings
        self.key = uuid.uuid4().hex  # names this search in the processes that run its trials
        k = min(folds, len(recordings))
        self.groups = [list(range(i, len(recordings), k)) for i in range(k)]
        self.max_far = max_far
        self._features: dict[tuple[int, FeatureRecipe], np.ndarray] = {}
        self.y = np.concatenate([r.scored_labels() for r in recordings])

    def features(self, index: int, recipe: FeatureRecipe) -> np.ndarray:
        key = (index, recipe)
        if key not in self._features:
            r = self.recordings[index]
            self._features[key] = relative_features(r.values, r.baseline, recipe)
        return self._features[key]

    def out_of_fold(self, spec: ModelSpec) -> list[np.ndarray]:
        """Per training recording, out-of-fold scores of its scored rows."""
        scores: list[np.ndarray] = [np.empty(0)] * len(self.recordings)
        if spec.family in LABEL_FREE:
            model = AnomalyModel(spec)
            for i, r in enumerate(self.recordings):
                raw = model.raw_scores(r.baseline, self.features(i, spec.recipe))
                scores[i] = model.smoothed(raw)[r.scored_from :]
            return scores
        for held in self.groups:
            train = [i for i in range(len(self.recordings)) if i not in held]
            booster = fit_booster(
                spec, [(self.features(i, spec.recipe), self.recordings[i]) for i in train]
            )
            model = AnomalyModel(spec, booster)
            for i in held:
                raw = model.raw_scores(self.recordings[i].baseline, self.features(i, spec.recipe))
                scores[i] = model.smoothed(raw)[self.recordings[i].scored_from :]
        return scores

    def evaluate(self, spec: ModelSpec) -> Trial:
        """The trial's scores: each group's alarms at the threshold chosen on the other groups
        (so a threshold that does not carry over to unseen recordings scores low), pooled and
        per recording (``cv_typical_f1``). The spec's threshold is then chosen on all training
        recordings together."""
        t0 = time.monotonic()
        scores = self.out_of_fold(spec)
        labels = [r.scored_labels() for r in self.recordings]
        alarms: list[np.ndarray] = [np.empty(0, dtype=bool)] * len(self.recordings)
        for held in self.groups:
            rest = [i for i in range(len(self.recordings)) if i not in held]
            cut, _ = best_threshold(
                np.concatenate([labels[i] for i in rest]),
                np.concatenate([scores[i] for i in rest]),
                self.max_far,
            )
            for i in held:
                alarms[i] = scores[i] >= cut
        score = outlier_score(self.y, np.concatenate(alarms))
        typical = cv_typical_f1(labels, alarms)
        threshold, _ = best_threshold(self.y, np.concatenate(scores), self.max_far)
        spec = spec.model_copy(update={"threshold": threshold})
        return Trial(spec, score, time.monotonic() - t0, typical_f1=typical)

    def fit(self, spec: ModelSpec) -> AnomalyModel:
        """The chosen spec trained on every training recording."""
        return AnomalyModel.fit(spec, self.recordings)


def run_search(
    recordings: list[Recording],
    budget_seconds: float,
    families: Sequence[Family] = FAMILIES,
    max_trials: int = 200,
    folds: int = 4,
    max_far: float = 20.0,
    seed: int = 0,
    measurement_sets: list[tuple[str, ...] | None] | None = None,
    on_trial: Callable[[Trial], None] | None = None,
    ray_address: str | None = None,
) -> tuple[SearchResult, Search]:
    """Ray Tune + Optuna trials until ``budget_seconds`` have passed (each family has at least
    one finished trial even so) or ``max_trials`` ran; ``on_trial`` sees each as it finishes."""
    from driftline.anomaly.automl_ray import tune_search
    from driftline.anomaly.automl_space import SearchSpace

    search = Search(recordings, folds=folds, max_far=max_far)
    space = SearchSpace(families, measurement_sets or [None])
    trials = tune_search(search, space, budget_seconds, max_trials, seed, on_trial, ray_address)
    for t in trials:
        log.debug(
            "trial %s: F1 %.3f (median recording %s) FAR %.1f",
            t.spec.family,
            t.score.f1,
            t.typical_f1,
            t.score.far,
        )
    return SearchResult(trials), search


# Per process running trials (a Ray worker): the search its trials evaluate, so a worker that
# runs several trials keeps the feature cache from one to the next.
_SEARCHES: dict[str, Search] = {}


def ray_objective(config: dict[str, Any], search: Search) -> None:
    """One Ray Tune trial: the group-wise CV score of the spec the searcher suggested."""
    from ray import tune

    search = _SEARCHES.setdefault(search.key, search)
    trial = search.evaluate(ModelSpec.model_validate_json(config["spec"]))
    tune.report(
        {
            "cv_f1": trial.score.f1,
            "cv_typical_f1": trial.typical_f1,
            "cv_far": trial.score.far,
            "cv_mar": trial.score.mar,
            "cv_rows": trial.score.rows,
            "seconds": trial.seconds,
            "spec_json": trial.spec.model_dump_json(),
        }
    )
