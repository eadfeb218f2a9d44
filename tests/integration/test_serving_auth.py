"""The serving API key against a real ``bentoml serve`` started with DRIFTLINE_SERVING_API_KEY
in its environment, serving a champion trained and promoted as in test_serving."""

from __future__ import annotations

import contextlib
import subprocess
import time
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest

from driftline.core.settings import Settings
from driftline.platform import procs
from driftline.serving.serve import serve_command, serve_env
from tests.integration.test_model_steps import (
    FEATURES,
    StandInRepo,
    data_side_stand_ins,
    module_settings,
    skab_file,
)
from tests.integration.test_serving import free_port, wait_ready, wire

pytestmark = pytest.mark.integration

KEY = "s3cret-key-for-tests-only"


@contextlib.contextmanager
def serving_a_champion(
    kafka_bootstrap: str, skab_dir: Path, tmp: Path, extra_env: dict[str, str]
) -> Iterator[types.SimpleNamespace]:
    """One small model trained and promoted, and ``bentoml serve`` on it with ``extra_env``."""
    settings, scored = promoted_champion(kafka_bootstrap, skab_dir, tmp)
    with serving_process(settings, extra_env, tmp / "serve.log") as base:
        yield types.SimpleNamespace(
            settings=settings, base=base, scored=scored, log=tmp / "serve.log"
        )


def promoted_champion(
    kafka_bootstrap: str, skab_dir: Path, tmp: Path
) -> tuple[Settings, pd.DataFrame]:
    """Settings whose registry has one small model, trained and promoted; and a SKAB file it
    was not trained on."""
    settings = module_settings(kafka_bootstrap, tmp)
    return settings, promote_a_champion(settings, skab_dir)


def promote_a_champion(settings: Settings, skab_dir: Path) -> pd.DataFrame:
    """Train a small model and promote it; a SKAB file it was not trained on."""
    from driftline.training.features import add_features
    from driftline.training.promote import promote
    from driftline.training.train import train

    with data_side_stand_ins():
        files = {n: skab_file(skab_dir, n) for n in (0, 4)}
        StandInRepo(settings).save_dataset(
            "small", add_features(files[0], FEATURES, settings.feature_window)
        )
        files[4].to_parquet(settings.data_dir / "stand_in_raw.parquet", index=False)
        trained = train(settings, "small", run_name="small")
        start, end = files[4]["ts"].min(), files[4]["ts"].max()
        assert promote(settings, settings.model_name, trained.model_version, start, end).promoted
    return files[4]


@contextlib.contextmanager
def serving_process(
    settings: Settings, extra_env: dict[str, str], log_path: Path, ready: bool = True
) -> Iterator[str]:
    """``bentoml serve`` on ``settings``' champion, ready (or, ``ready=False``, only alive:
    there may be no champion yet); its base URL."""
    port = free_port()
    with log_path.open("wb") as log:
        child = procs.start(
            serve_command(port),
            env=serve_env(settings) | {"DRIFTLINE_SERVING_MAX_LATENCY_MS": "10000", **extra_env},
            stdout=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            if ready:
                wait_ready(base, child, timeout=90, log=log_path)
            else:
                wait_alive(base, child, timeout=90, log=log_path)
            yield base
        finally:
            procs.stop_group(child)


def wait_alive(base: str, child: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, log.read_text(errors="replace")[-4000:]
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/livez", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"{base} not alive in {timeout:.0f}s: {log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(
    kafka_bootstrap: str, skab_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("serving_auth")
    with serving_a_champion(
        kafka_bootstrap, skab_dir, tmp, {"DRIFTLINE_SERVING_API_KEY": KEY}
    ) as env:
        yield env


def readings(server: types.SimpleNamespace) -> list[dict]:
    return wire(server.scored.head(2), "skab-auth", datetime.now(UTC) - timedelta(minutes=5))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {KEY}"},
        {"Authorization": f"Bearer {KEY}x"},
        {"X-API-Key": ""},
        {"X-API-Key": KEY[:-1]},
    ],
    ids=["none", "wrong-bearer", "other-scheme", "longer", "empty", "shorter"],
)
def test_predict_without_the_key_gets_401(server: types.SimpleNamespace, headers: dict) -> None:
    response = httpx.post(
        f"{server.base}/predict", json=readings(server), headers=headers, timeout=30
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert KEY not in response.text


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"}, {"X-API-Key": KEY}],
    ids=["bearer", "bearer-lowercase", "x-api-key"],
)
def test_predict_with_the_key_is_served(server: types.SimpleNamespace, headers: dict) -> None:
    response = httpx.post(
        f"{server.base}/predict", json=readings(server), headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    assert [p["seq"] for p in response.json()] == [0, 1]


def test_other_apis_need_the_key_and_probes_do_not(server: types.SimpleNamespace) -> None:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        assert client.post("/model", json={}).status_code == 401
        model = client.post("/model", json={}, headers={"X-API-Key": KEY})
        assert model.status_code == 200, model.text
        for path in ("/livez", "/readyz", "/metrics", "/docs.json"):
            assert client.get(path).status_code == 200, path
        metrics = client.get("/metrics").text
    refused = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("driftline_serving_unauthorized_total")
    ]
    assert refused and refused[0] >= 1, metrics[-2000:]


def test_the_key_is_never_logged(server: types.SimpleNamespace) -> None:
    httpx.post(f"{server.base}/predict", json={}, headers={"X-API-Key": "nope"}, timeout=30)
    assert KEY not in server.log.read_text(errors="replace")
