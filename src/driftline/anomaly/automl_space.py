"""The AutoML search space, as Optuna's define-by-run: the model family is a categorical, then
each family's own choices (feature windows and measurements, parameters, score smoothing).

Every choice is named after its family (``mset.window``), so Optuna's TPE models each family's
parameters on that family's trials only. A trial's config carries the resulting ``ModelSpec``
as JSON (``spec``); its decision threshold is not sampled but chosen inside the trial by
group-wise cross-validation (``Search.evaluate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from driftline.anomaly.features import FeatureRecipe
from driftline.anomaly.model import XGB_DEFAULTS, Family, ModelSpec

if TYPE_CHECKING:
    from optuna import Trial as OptunaTrial

# Label-free choices. Chosen after exploring SKAB valve1 (the only labelled data here): raw
# readings (window 1), 5- and 60-row windows and no smoothing were never competitive.
WINDOWS = (10, 20, 30)
SMOOTH = (5, 10, 20, 30)
XGB_WINDOWS = ((5, 30), (10, 30, 60), (5, 15, 30, 60), (10, 60))
XGB_PARAMS: dict[str, tuple[Any, ...]] = {
    "max_depth": (2, 3, 4, 5),
    "n_estimators": (80, 150, 250),
    "learning_rate": (0.05, 0.1, 0.2),
    "min_child_weight": (1.0, 5.0, 20.0),
}
PCA_VARIANCE = (0.9, 0.95, 0.99)
MSET_BANDWIDTH = (1.0, 2.0, 4.0)
MSET_MEMORY = (100, 200)
# After the defaults, each family gets this many more trials before Optuna chooses families
# freely: the pick compares families on equally many trials each (SearchResult.pick).
WARMUP_ROUNDS = 2


class SearchSpace:
    """Optuna's define-by-run function for OptunaSearch (a class, so the searcher pickles)."""

    def __init__(
        self,
        families: Sequence[Family],
        measurement_sets: Sequence[tuple[str, ...] | None] = (None,),
    ) -> None:
        if not families:
            raise ValueError("no model family to search")
        self.families = list(families)
        self.measurement_sets = list(measurement_sets) or [None]

    def __call__(self, trial: OptunaTrial) -> dict[str, str]:
        family: Family = trial.suggest_categorical("family", self.families)  # type: ignore[assignment]
        return {"spec": self.suggest(trial, family).model_dump_json()}

    def suggest(self, trial: OptunaTrial, family: Family) -> ModelSpec:
        def choose(name: str, options: Sequence[Any]) -> Any:
            return trial.suggest_categorical(f"{family}.{name}", list(options))

        smooth = int(choose("smooth", SMOOTH))
        params: dict[str, Any]
        if family == "xgboost":
            recipe = FeatureRecipe(
                raw=bool(choose("raw", (True, False))),
                windows=XGB_WINDOWS[choose("windows", range(len(XGB_WINDOWS)))],
                spread=bool(choose("spread", (True, False))),
            )
            params = {name: choose(name, options) for name, options in XGB_PARAMS.items()}
            return ModelSpec(family=family, recipe=recipe, params=params, smooth=smooth)
        measurements = self.measurement_sets[
            choose("measurements", range(len(self.measurement_sets)))
        ]
        recipe = FeatureRecipe(
            raw=False, windows=(choose("window", WINDOWS),), measurements=measurements
        )
        if family == "pca-t2q":
            params = {"variance": choose("variance", PCA_VARIANCE)}
        else:
            params = {
                "bandwidth": choose("bandwidth", MSET_BANDWIDTH),
                "memory_size": choose("memory_size", MSET_MEMORY),
            }
        return ModelSpec(family=family, recipe=recipe, params=params, smooth=smooth)

    def default_point(self, family: Family) -> dict[str, Any]:
        """``automl.defaults(family)`` as a point of this space (its parameters explicit)."""
        if family == "xgboost":
            point: dict[str, Any] = {
                "raw": True,
                "windows": XGB_WINDOWS.index((5, 15, 30, 60)),
                "spread": True,
                "smooth": 5,
                **{name: XGB_DEFAULTS[name] for name in XGB_PARAMS},
            }
        else:
            whole = self.measurement_sets.index(None) if None in self.measurement_sets else 0
            point = {"measurements": whole, "smooth": 20}
            if family == "pca-t2q":
                point |= {"window": 10, "variance": 0.95}
            else:
                point |= {"window": 30, "bandwidth": 2.0, "memory_size": 100}
        return {"family": family, **{f"{family}.{k}": v for k, v in point.items()}}

    def first_points(self, rounds: int = WARMUP_ROUNDS) -> list[dict[str, Any]]:
        """The trials Optuna is given first: each family's defaults, then ``rounds`` trials of
        each family in turn with only the family fixed (Optuna samples the rest)."""
        warmup = [{"family": f} for _ in range(rounds) for f in self.families]
        return [self.default_point(f) for f in self.families] + warmup
