"""`driftline up --demo` shortens the loop with its own defaults, and `up` on the embedded
broker makes topics of one partition, unless the user chose otherwise."""

from __future__ import annotations

import pytest

from driftline.core.settings import Settings
from driftline.platform.up import _demo_settings, _embedded_partitions

DEMO_SETTINGS = (
    "RETRAIN_LOOKBACK_SECONDS",
    "DRIFT_WINDOW_SIZE",
    "BASELINE_READINGS",
    "AUTOML_BUDGET_SECONDS",
)


def test_demo_defaults_fill_what_the_user_left_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DEMO_SETTINGS + ("RETRAIN_SKIP_STEPS",):
        monkeypatch.delenv(f"DRIFTLINE_{name}", raising=False)
    env: dict[str, str] = {}
    settings = _demo_settings(Settings(), env)
    assert settings.retrain_lookback_seconds == 0.0
    assert settings.retrain_skip_steps == ""  # the AutoML search runs, on a short budget
    assert settings.automl_budget_seconds == 5.0
    assert settings.baseline_readings == 100
    assert env == {
        "DRIFTLINE_RETRAIN_LOOKBACK_SECONDS": "0.0",
        "DRIFTLINE_DRIFT_WINDOW_SIZE": "200",
        "DRIFTLINE_BASELINE_READINGS": "100",
        "DRIFTLINE_AUTOML_BUDGET_SECONDS": "5.0",
    }


def test_the_users_own_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DEMO_SETTINGS:
        monkeypatch.delenv(f"DRIFTLINE_{name}", raising=False)
    monkeypatch.setenv("DRIFTLINE_RETRAIN_LOOKBACK_SECONDS", "600")
    monkeypatch.setenv("DRIFTLINE_AUTOML_BUDGET_SECONDS", "30")
    env: dict[str, str] = {}
    settings = _demo_settings(Settings(drift_window_size=40), env)
    assert settings.retrain_lookback_seconds == 600.0
    assert settings.automl_budget_seconds == 30.0
    assert settings.baseline_readings == 100
    assert env["DRIFTLINE_AUTOML_BUDGET_SECONDS"] == "30.0"
    assert env["DRIFTLINE_DRIFT_WINDOW_SIZE"] == "40"


def test_topics_on_the_embedded_broker_have_one_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_TOPIC_PARTITIONS", raising=False)
    env: dict[str, str] = {}
    assert _embedded_partitions(Settings(), env).topic_partitions == 1
    assert env == {"DRIFTLINE_TOPIC_PARTITIONS": "1"}  # and so in every service up starts


def test_partitions_the_user_chose_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_TOPIC_PARTITIONS", "3")
    env: dict[str, str] = {}
    assert _embedded_partitions(Settings(), env).topic_partitions == 3
    assert env == {}  # the children read the user's own DRIFTLINE_TOPIC_PARTITIONS
