"""The README's first command, headless: `driftline up --demo` closes the loop (drift ->
detection -> trigger -> pipeline -> promotion -> serving) on embedded defaults and cleans up."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.core.settings import Settings
from driftline.simulate.signals import PUMP_STATS
from driftline.store.tables import promotion_decisions, retrain_runs, trigger_decisions
from tests.e2e.demo_runs import processes_using, run_demo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, dict, str]]:
    """`make demo` twice in one checkout: both runs must close the loop on their own."""
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    out = []
    for _ in range(2):
        result = run_demo(data_dir)
        assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
        summary = json.loads((data_dir / "demo-runs" / "latest" / "demo-summary.json").read_text())
        out.append((Path(summary["run_dir"]), summary, result.stdout + result.stderr))
    return out


@pytest.fixture(scope="module", params=[0, 1], ids=["first run", "second run"])
def demo(
    demos: list[tuple[Path, dict, str]], request: pytest.FixtureRequest
) -> tuple[Path, dict, str]:
    return demos[request.param]


def test_each_run_has_its_own_fresh_state(demos: list[tuple[Path, dict, str]]) -> None:
    (first_dir, first, _), (second_dir, second, _) = demos
    assert first_dir != second_dir and first_dir.parent == second_dir.parent
    assert first["first_champion"] == second["first_champion"] == "1"
    assert second["trigger_fired"] == 1 and second["stored"] == second["readings_sent"]
    assert len(second["pipeline_steps"]) == len(first["pipeline_steps"])


def test_every_stage_happened_in_order(demo: tuple[Path, dict, str]) -> None:
    _, summary, out = demo
    assert "Demo summary" in out
    t = summary["seconds_from_drift_onset"]
    assert 0 < t["detection"] <= t["trigger"] <= t["promotion"]
    assert t["promotion"] <= t["first_prediction_of_new_model"]
    assert summary["trigger_fired"] == 1
    assert summary["stored"] == summary["readings_sent"]  # ingest lost nothing
    assert summary["valid"] + summary["dead_lettered"] == summary["readings_sent"]
    steps = summary["pipeline_steps"]
    for step in ("preprocess-step", "tune-step", "train-step", "evaluate-step", "promote-step"):
        assert steps.get(step) == "success", steps


def test_serving_answers_with_the_promoted_model(demo: tuple[Path, dict, str]) -> None:
    data_dir, summary, _ = demo
    first, served = summary["first_champion"], summary["served_retrained_version"]
    versions = [str(p["model_version"]) for p in summary["promotions"]]
    assert first is not None and served is not None and served != first
    assert versions.index(served) > versions.index(first)
    assert set(summary["serving_versions_first_seen"]) >= {first, served}

    engine = sa.create_engine(f"sqlite:///{data_dir / 'driftline.db'}")
    with engine.connect() as conn:
        decisions = conn.execute(sa.select(promotion_decisions)).mappings().all()
        runs = conn.execute(sa.select(retrain_runs)).mappings().all()
        fired = conn.execute(
            sa.select(trigger_decisions).where(trigger_decisions.c.fired.is_(True))
        ).all()
    won = [d for d in decisions if d["challenger_version"] == served]
    assert len(won) == 1 and won[0]["promoted"] and won[0]["champion_version"] == first
    request_id = summary["retrain_requests"][0]["request_id"]
    assert won[0]["request_id"] == request_id
    assert [r["status"] for r in runs if r["request_id"] == request_id] == ["succeeded"]
    assert len(fired) == 1


def test_the_new_model_was_trained_on_the_drifted_readings(demo: tuple[Path, dict, str]) -> None:
    from driftline.training import modeling, registry
    from driftline.training.datarepo import DataRepo

    data_dir, summary, _ = demo
    settings = Settings(data_dir=data_dir, mlflow_tracking_uri=None, bentoml_home=None)  # type: ignore[call-arg]
    client = modeling.mlflow_client(settings)
    served = summary["served_retrained_version"]
    assert registry.champion_version(client, settings.model_name) == served
    tag = client.get_model_version(settings.model_name, served).tags["data_tag"]
    assert tag in summary["where_to_look"]["data_tags"]
    dataset = DataRepo(settings).load_dataset(tag)
    onset = pd.Timestamp(datetime.fromisoformat(summary["drift_onset"]))
    drifted = dataset[dataset["ts"] >= onset]
    assert len(drifted) > 0.5 * len(dataset)
    mean, std, _ = PUMP_STATS["Accelerometer1RMS"]
    normal = drifted[drifted["label"] == 0]
    assert normal["Accelerometer1RMS"].mean() > mean + 2 * std  # the wear shift is in there


def test_the_new_model_is_the_automl_pick(demo: tuple[Path, dict, str]) -> None:
    """The retrained model is what the tune step's search picked, as in any retraining."""
    from driftline.training import modeling

    data_dir, summary, _ = demo
    settings = Settings(data_dir=data_dir, mlflow_tracking_uri=None, bentoml_home=None)  # type: ignore[call-arg]
    client = modeling.mlflow_client(settings)
    version = client.get_model_version(settings.model_name, summary["served_retrained_version"])
    run = client.get_run(str(version.run_id))
    assert run.data.tags["spec_origin"] == "tuned"
    assert run.data.tags["family"] == version.tags["family"]
    search = f"tune-{run.data.tags['data_tag']}-"
    experiment = client.get_experiment_by_name("driftline-automl")
    assert experiment is not None
    trials = [
        r
        for r in client.search_runs([experiment.experiment_id])
        if r.data.tags["driftline.search"].startswith(search)
    ]
    # Every family's defaults at least, each scored by group-wise cross-validation.
    assert len(trials) >= 3 and all("cv_typical_f1" in r.data.metrics for r in trials)


def test_drift_stops_once_the_new_reference_is_in_place(demo: tuple[Path, dict, str]) -> None:
    _, summary, _ = demo
    assert summary["windows_after_promotion"] >= 4
    assert summary["drifted_windows_after_promotion"] == 0


def test_nothing_is_left_behind(demo: tuple[Path, dict, str]) -> None:
    data_dir, summary, out = demo
    assert processes_using(data_dir) == [], "children outlived driftline up"
    assert not (data_dir / "broker.json").exists()
    assert summary["outcome"].startswith("the loop closed")
    # A clean terminal: third-party progress bars, warnings and INFO lines went to the logs.
    for noise in ("Downloading artifacts", "UserWarning", "font_manager", "INFO"):
        assert noise not in out
