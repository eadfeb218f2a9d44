"""The AutoML search space Optuna samples: families as a categorical, per-family choices."""

from __future__ import annotations

import optuna
import pytest

from driftline.anomaly.automl import defaults
from driftline.anomaly.automl_space import WARMUP_ROUNDS, SearchSpace
from driftline.anomaly.model import FAMILIES, XGB_DEFAULTS, ModelSpec

SETS = [None, ("flow", "current")]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_familys_default_point_is_its_defaults(family: str) -> None:
    space = SearchSpace(FAMILIES, SETS)
    config = space(optuna.trial.FixedTrial(space.default_point(family)))
    spec = ModelSpec.model_validate_json(config["spec"])
    default = defaults(family)
    assert (spec.family, spec.recipe) == (default.family, default.recipe)
    assert spec.smooth == default.smooth
    explicit = XGB_DEFAULTS if family == "xgboost" else {}
    assert {**explicit, **default.params}.items() <= {**explicit, **spec.params}.items()


def test_the_first_points_give_every_family_equally_many_trials() -> None:
    space = SearchSpace(["pca-t2q", "xgboost"], SETS)
    points = space.first_points()
    assert [p["family"] for p in points] == ["pca-t2q", "xgboost"] * (1 + WARMUP_ROUNDS)
    # After the defaults only the family is fixed; Optuna samples the rest.
    assert all(list(p) == ["family"] for p in points[2:])


def test_optuna_samples_only_the_chosen_familys_parameters() -> None:
    space = SearchSpace(FAMILIES, SETS)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        spec = ModelSpec.model_validate_json(space(trial)["spec"])
        family = trial.params["family"]
        assert spec.family == family
        assert all(k == "family" or k.startswith(f"{family}.") for k in trial.params)
        assert spec.recipe.measurements in SETS or family == "xgboost"
        study.tell(trial, 0.5)
        seen.add(family)
    assert seen == set(FAMILIES)
