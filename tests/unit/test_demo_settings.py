"""`driftline up --demo` shortens the loop with its own defaults, unless the user chose
otherwise."""

from __future__ import annotations

import pytest

from driftline.core.settings import Settings
from driftline.platform.up import _demo_settings


def test_demo_defaults_fill_what_the_user_left_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RETRAIN_LOOKBACK_SECONDS", "RETRAIN_SKIP_STEPS", "DRIFT_WINDOW_SIZE"):
        monkeypatch.delenv(f"DRIFTLINE_{name}", raising=False)
    env: dict[str, str] = {}
    settings = _demo_settings(Settings(), env)
    assert settings.retrain_lookback_seconds == 0.0
    assert settings.retrain_skip_steps == "tune"
    assert env == {
        "DRIFTLINE_RETRAIN_LOOKBACK_SECONDS": "0.0",
        "DRIFTLINE_RETRAIN_SKIP_STEPS": "tune",
        "DRIFTLINE_DRIFT_WINDOW_SIZE": "150",
    }


def test_the_users_own_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_RETRAIN_LOOKBACK_SECONDS", "600")
    monkeypatch.setenv("DRIFTLINE_RETRAIN_SKIP_STEPS", "")
    monkeypatch.delenv("DRIFTLINE_DRIFT_WINDOW_SIZE", raising=False)
    env: dict[str, str] = {}
    settings = _demo_settings(Settings(drift_window_size=40), env)
    assert settings.retrain_lookback_seconds == 600.0
    assert settings.retrain_skip_steps == ""
    assert env["DRIFTLINE_RETRAIN_SKIP_STEPS"] == ""
    assert env["DRIFTLINE_DRIFT_WINDOW_SIZE"] == "40"
