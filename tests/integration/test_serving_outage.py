"""Serving keeps answering with the model it has when the registry goes away: a real
``bentoml serve`` whose MLflow store becomes unreadable after the champion was loaded."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from driftline.platform import procs
from driftline.platform.broker import wait_for_port
from driftline.serving.serve import serve_command, serve_env
from driftline.training.features import add_features
from tests.integration.test_model_steps import (
    FEATURES,
    StandInRepo,
    data_side_stand_ins,
    module_settings,
    skab_file,
)
from tests.integration.test_serving import free_port, wait_ready, wire

pytestmark = pytest.mark.integration


@pytest.mark.timeout(600)
def test_keeps_serving_the_champion_while_mlflow_is_unreachable(
    kafka_bootstrap: str, skab_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftline.serving.champion import ChampionWatcher
    from driftline.training.promote import promote
    from driftline.training.train import train

    settings = module_settings(kafka_bootstrap, tmp_path)
    with data_side_stand_ins():
        files = {n: skab_file(skab_dir, n) for n in (0, 4)}
        StandInRepo(settings).save_dataset(
            "small", add_features(files[0], FEATURES, settings.feature_window)
        )
        recent = pd.concat([files[4]], ignore_index=True)
        recent.to_parquet(settings.data_dir / "stand_in_raw.parquet", index=False)
        model = train(settings, "small", run_name="small")
        start, end = recent["ts"].min(), recent["ts"].max()
        assert promote(settings, settings.model_name, model.model_version, start, end).promoted

    # The registry as a server of its own (as in production), over the store just written.
    mlflow_port = free_port()
    with (tmp_path / "mlflow.log").open("wb") as log:
        registry = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
             "--port", str(mlflow_port), "--workers", "1",
             "--backend-store-uri", settings.resolved_mlflow_uri],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers too are stopped with its group
        )  # fmt: skip
    served = settings.model_copy(update={"mlflow_tracking_uri": f"http://127.0.0.1:{mlflow_port}"})
    port, log_path = free_port(), tmp_path / "serve.log"
    env = serve_env(served) | {
        "DRIFTLINE_SERVING_POLL_SECONDS": "1",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",  # fail each poll at once, not after minutes
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    child: subprocess.Popen[bytes] | None = None
    base = f"http://127.0.0.1:{port}"
    readings = wire(files[4].head(20), "skab-outage", datetime.now(UTC) - timedelta(minutes=5))
    try:
        wait_for_port("127.0.0.1", mlflow_port, 240)  # its migrations take a while
        with log_path.open("wb") as log:
            child = procs.start(serve_command(port), env=env, stdout=log)
        wait_ready(base, child, timeout=120, log=log_path)

        def versions() -> set[str]:
            response = httpx.post(f"{base}/predict", json=readings, timeout=30)
            assert response.status_code == 200, response.text
            return {p["model_version"] for p in response.json()}

        assert versions() == {model.model_version}
        # A watcher of the test's own, on the same registry, shows what serving's does (whose
        # log lines the BentoML worker does not print).
        watcher = ChampionWatcher(served)
        assert watcher.refresh() and watcher.current is not None
        os.killpg(registry.pid, signal.SIGKILL)  # the registry goes away, at once
        registry.wait()
        # Polled every second meanwhile: each poll fails; the model in service stays.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            assert versions() == {model.model_version}
            time.sleep(0.5)
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
        assert watcher.refresh() is False  # the registry cannot be asked: nothing swapped
        assert watcher.current.version == model.model_version
        assert child.poll() is None
    finally:
        if child is not None:
            procs.stop_group(child)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(registry.pid, signal.SIGKILL)
        registry.wait()
