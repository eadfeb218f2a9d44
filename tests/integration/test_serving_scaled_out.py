"""Serving scaled out: two real ``bentoml serve`` processes sharing the sensor histories in a
real Redis (DRIFTLINE_SERVING_HISTORY_URL), requests of the same sensors spread round-robin over
both (each sensor judged by its own baseline), against the registered model offline. And Redis away:
503 at once, not ready, one log line; back: scoring again."""

from __future__ import annotations

import contextlib
import threading
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.baseline import SensorBaseline, from_first_readings
from driftline.anomaly.baseline_store import BaselineStore
from driftline.core.settings import Settings
from tests.integration.test_model_steps import FEATURES
from tests.integration.test_serving import wire
from tests.integration.test_serving_auth import promoted_champion, serving_process
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

SENSORS = 3
READINGS = 150  # of each sensor; several feature windows
BASELINE = 400


@pytest.fixture(scope="module")
def replicas(
    kafka_bootstrap: str, skab_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("serving_scaled_out")
    settings, scored = promoted_champion(kafka_bootstrap, skab_dir, tmp)
    redis = RedisServer(tmp / "redis.log")
    env = {"DRIFTLINE_SERVING_HISTORY_URL": redis.url}
    logs = [tmp / "serve-0.log", tmp / "serve-1.log"]
    try:
        with contextlib.ExitStack() as stack:
            bases = [stack.enter_context(serving_process(settings, env, log)) for log in logs]
            yield types.SimpleNamespace(
                settings=settings, bases=bases, scored=scored, redis=redis, logs=logs
            )
    finally:
        redis.stop()


def offline_probabilities(
    settings: Settings, frame: pd.DataFrame, version: str, baseline: SensorBaseline
) -> np.ndarray:
    """The registered ``version``'s probabilities of ``frame``'s readings, offline."""
    from driftline.anomaly.bundle import alarm_probability
    from driftline.anomaly.registered import load_registered

    loaded = load_registered(settings.resolved_mlflow_uri, settings.model_name, version)
    assert loaded.bundle is not None
    model = loaded.bundle.model
    scores = model.score(baseline, frame[FEATURES].to_numpy(dtype="float64"))
    return alarm_probability(scores, model.spec.threshold)


def test_round_robin_over_two_replicas_scores_as_training_does(
    replicas: types.SimpleNamespace,
) -> None:
    # Each sensor's baseline (set as an operator would) is the file's first 400 rows; the
    # readings sent are the ones after it.
    baseline = from_first_readings(replicas.scored, "x", FEATURES, BASELINE)
    assert baseline is not None
    frame = replicas.scored.iloc[BASELINE : BASELINE + READINGS].reset_index(drop=True)
    start = datetime.now(UTC) - timedelta(hours=1)
    run = uuid.uuid4().hex[:6]
    store = BaselineStore(replicas.settings.data_dir / "baselines")
    for n in range(SENSORS):
        store.save(baseline.model_copy(update={"sensor_id": f"skab-scaled-{run}-{n}"}))
    served: dict[str, list[dict]] = {}
    failures: list[str] = []

    def sensor_client(n: int) -> None:
        # Each sensor's readings in order, 1-5 a request; request k to replica k % 2, so every
        # sensor's history is written by both. The sensors' clients run at once.
        sensor = f"skab-scaled-{run}-{n}"
        readings = wire(frame, sensor, start)
        answers: list[dict] = []
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(httpx.Client(base_url=b, timeout=30))
                       for b in replicas.bases]  # fmt: skip
            i = k = 0
            while i < len(readings):
                size = 1 + (k * 7 + n) % 5
                response = clients[(k + n) % 2].post("/predict", json=readings[i : i + size])
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text}")
                    return
                answers += response.json()
                i += size
                k += 1
        served[sensor] = answers

    threads = [threading.Thread(target=sensor_client, args=(n,)) for n in range(SENSORS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert failures == []
    versions = {p["model_version"] for answers in served.values() for p in answers}
    assert len(versions) == 1
    offline = offline_probabilities(replicas.settings, frame, versions.pop(), baseline)
    for sensor, answers in served.items():
        assert [p["seq"] for p in answers] == list(range(READINGS)), sensor
        assert {p["baseline_version"] for p in answers} == {baseline.version}
        probability = np.array([p["anomaly_probability"] for p in answers])
        np.testing.assert_allclose(probability, offline, rtol=1e-6, atol=1e-7, err_msg=sensor)


def test_redis_away_is_503_at_once_not_ready_and_logged_once(
    replicas: types.SimpleNamespace,
) -> None:
    reading = wire(replicas.scored.head(1), "skab-redis-away", datetime.now(UTC))[0]
    base = replicas.bases[0]
    replicas.redis.stop()
    try:
        for _ in range(10):
            response = httpx.post(f"{base}/predict", json=reading, timeout=10)
            assert response.status_code == 503, response.text
            assert "Redis" in response.json()["detail"]
            assert response.headers["retry-after"]
        assert httpx.get(f"{base}/readyz", timeout=10).status_code != 200
    finally:
        replicas.redis.start()
    response = httpx.post(f"{base}/predict", json=reading, timeout=10)
    assert response.status_code == 200, response.text
    assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
    log = replicas.logs[0].read_text(errors="replace")
    assert log.count("answering 503: Redis history") == 1, log[-3000:]
    assert log.count("scoring: scoring again") == 1, log[-3000:]
