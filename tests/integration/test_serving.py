"""The serving slice against a real ``bentoml serve`` process, real MLflow and BentoML stores
under tmp dirs and the real broker: models trained and promoted on SKAB valve1 data as in
test_model_steps (whose data-side stand-ins are reused)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
import types
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from driftline.core.records import Prediction
from driftline.core.topics import Topics
from driftline.platform import procs
from driftline.serving.serve import NotReady, serve_command, serve_env, wait_until_ready
from driftline.training.features import add_features
from tests.integration.test_model_steps import (
    FEATURES,
    StandInRepo,
    data_side_stand_ins,
    module_settings,
    skab_file,
)
from tests.streams import read_topic

pytestmark = pytest.mark.integration

SCORED_FILE = 4  # not trained on: its rows are scored through the service


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, child: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    try:
        wait_until_ready(base, child, timeout)
    except NotReady as exc:
        tail = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"{exc}; its log ends:\n{tail}") from exc


@pytest.fixture(scope="module")
def env(
    kafka_bootstrap: str, skab_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.SimpleNamespace]:
    """Two trained versions, the first promoted, and a serving process on the champion."""
    from driftline.training.promote import promote
    from driftline.training.train import train

    tmp = tmp_path_factory.mktemp("serving")
    settings = module_settings(kafka_bootstrap, tmp)
    with data_side_stand_ins():
        window = settings.feature_window
        files = {n: skab_file(skab_dir, n) for n in (0, 1, 2, 3, SCORED_FILE, 5)}
        repo = StandInRepo(settings)
        repo.save_dataset("small", add_features(files[0], FEATURES, window))
        repo.save_dataset(
            "full", add_features(pd.concat(files[n] for n in range(4)), FEATURES, window)
        )
        recent = pd.concat([files[SCORED_FILE], files[5]], ignore_index=True)
        recent.to_parquet(settings.data_dir / "stand_in_raw.parquet", index=False)
        start, end = recent["ts"].min(), recent["ts"].max()

        first = train(settings, "small", run_name="small")
        second = train(settings, "full", run_name="full")
        assert promote(settings, settings.model_name, first.model_version, start, end).promoted

        port = free_port()
        log = (tmp / "serve.log").open("wb")
        # Poll the alias rarely: the swap test must see the Kafka event do the work.
        child_env = serve_env(settings) | {
            "DRIFTLINE_SERVING_POLL_SECONDS": "600",
            "DRIFTLINE_SERVING_PUBLISH_PREDICTIONS": "true",
            # Shedding (503 for a request queued longer than this) is BentoML's overload
            # guard, not the swap: on a CI box shared with the rest of the suite, loading the
            # new model can stall the one worker for over a second. The swap must not fail a
            # request; the default 1 s bound is for production.
            "DRIFTLINE_SERVING_MAX_LATENCY_MS": "10000",
        }
        child = procs.start(serve_command(port), env=child_env, stdout=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, child, timeout=90, log=tmp / "serve.log")
            yield types.SimpleNamespace(
                settings=settings,
                base=base,
                first=first,
                second=second,
                scored=files[SCORED_FILE],
                promote=lambda version: promote(settings, settings.model_name, version, start, end),
                log=tmp / "serve.log",
            )
        finally:
            procs.stop_group(child)
            log.close()


def wire(frame: pd.DataFrame, sensor: str, start: datetime) -> list[dict[str, Any]]:
    """SKAB rows as wire-format readings of ``sensor``, one a second from ``start``."""
    return [
        {
            "sensor_id": sensor,
            "ts": (start + timedelta(seconds=i)).isoformat(),
            "seq": i,
            "values": {f: float(row[f]) for f in FEATURES},
        }
        for i, (_, row) in enumerate(frame.iterrows())
    ]


def score_through_service(
    env: types.SimpleNamespace, version: str
) -> tuple[np.ndarray, np.ndarray]:
    """The scored file's rows, in order, through the service as a new sensor: its first
    ``baseline_readings`` are pending (its commissioning period), the rest scored against the
    baseline they make. Returns the served probabilities of the scored rows, and those the
    registered ``version`` gives offline with the same baseline."""
    from driftline.anomaly.baseline_store import BaselineStore
    from driftline.anomaly.registered import load_registered

    frame = env.scored.reset_index(drop=True)
    sensor = f"skab-serving-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC) - timedelta(seconds=len(frame) + 60)
    readings = wire(frame, sensor, start)
    served: list[dict[str, Any]] = []
    with httpx.Client(base_url=env.base, timeout=30) as client:
        first = client.post("/predict", json=readings[0])  # one reading: one prediction
        assert first.status_code == 200, first.text
        served.append(first.json())
        for i in range(1, len(readings), 100):
            response = client.post("/predict", json=readings[i : i + 100])
            assert response.status_code == 200, response.text
            served += response.json()
    assert [p["seq"] for p in served] == list(range(len(frame)))
    assert {(p["model_name"], p["model_version"]) for p in served} == {
        (env.settings.model_name, version)
    }
    n = env.settings.baseline_readings
    pending, scored = served[:n], served[n:]
    assert {(p["baseline"], p["anomaly_probability"], p["label"]) for p in pending} == {
        ("pending", None, None)
    }
    assert {p["baseline"] for p in scored} == {"ready"}
    model = load_registered(env.settings.resolved_mlflow_uri, env.settings.model_name, version)
    assert model.bundle is not None
    assert {p["family"] for p in served} == {model.family}
    # The baseline serving completed is the sensor's own first readings, kept in the store.
    stored = BaselineStore(env.settings.data_dir / "baselines").get(sensor)
    assert stored is not None and stored.count == n
    assert {p["baseline_version"] for p in scored} == {stored.version}
    probability = np.array([p["anomaly_probability"] for p in scored])

    offline, versions = model.bundle.frame_scores(frame.assign(sensor_id=sensor), n)
    assert set(versions) == {stored.version}
    return probability, offline[n:]


def test_publishes_each_prediction_for_monitoring(env: types.SimpleNamespace) -> None:
    # skab-valve1-0's baseline is in the champion (trained on it); skab-published has none.
    now = datetime.now(UTC)
    readings = wire(env.scored.head(5), "skab-valve1-0", now - timedelta(minutes=5))
    readings += wire(env.scored.head(3), "skab-published", now - timedelta(minutes=5))
    response = httpx.post(f"{env.base}/predict", json=readings, timeout=30)
    assert response.status_code == 200, response.text
    predictions = response.json()
    assert [p["baseline"] for p in predictions] == ["ready"] * 5 + ["pending"] * 3
    assert all(p["baseline_version"] and p["family"] for p in predictions[:5])
    # A pending prediction has no score: monitoring and labelling never see it.
    answered = {p["reading_id"]: p for p in predictions[:5]}
    topic = Topics(env.settings.topic_prefix).predictions

    def ours() -> list[Prediction]:
        records = asyncio.run(read_topic(env.settings, topic, timeout=5))
        return [
            p
            for p in (Prediction.model_validate_json(m.value or b"") for m in records)
            if p.reading_id in answered
        ]

    deadline = time.monotonic() + 30
    while len(published := ours()) < len(answered) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {p.reading_id: p.model_dump(mode="json") for p in published} == answered
    metrics = httpx.get(f"{env.base}/metrics", timeout=10).text
    pending = [
        line for line in metrics.splitlines()
        if line.startswith("driftline_serving_baseline_pending_total")
    ]  # fmt: skip
    assert pending and float(pending[0].split()[-1]) >= 3, pending


@pytest.mark.parametrize(
    ("body", "check", "column"),
    [
        ({"sensor_id": "skab-x", "ts": "now"}, "missing_field", "values"),
        ({"ts": "2020-01-01T00:00:00Z", "values": {}}, None, "sensor_id"),
        ("not a reading", None, None),
        ([], "not_empty", None),
    ],
)
def test_malformed_structure_gets_422_with_reasons(
    env: types.SimpleNamespace, body: Any, check: str | None, column: str | None
) -> None:
    response = httpx.post(f"{env.base}/predict", json=body, timeout=10)
    assert response.status_code == 422, response.text
    reasons = response.json()["readings"][0]["reasons"]
    assert reasons and all(r["detail"] for r in reasons)
    if check is not None:
        assert check in {r["check"] for r in reasons}, reasons
    if column is not None:
        assert column in {r["column"] for r in reasons}, reasons


def test_bad_values_get_422_per_reading_and_field(env: types.SimpleNamespace) -> None:
    now = datetime.now(UTC)
    good = wire(env.scored.head(1), "skab-bad-values", now - timedelta(seconds=5))[0]
    out_of_range = {**good, "values": {**good["values"], "Current": 999.0}}
    unknown = {**good, "sensor_id": "toaster-1"}
    future = {**good, "ts": (now + timedelta(days=1)).isoformat()}
    not_number = {**good, "values": {**good["values"], "Voltage": "high"}}
    body = [good, out_of_range, unknown, future, not_number]
    response = httpx.post(f"{env.base}/predict", json=body, timeout=10)
    assert response.status_code == 422, response.text
    by_index = {
        r["index"]: {(x["check"], x["column"]) for x in r["reasons"]}
        for r in response.json()["readings"]
    }
    assert 0 not in by_index
    assert ("in_range", "Current") in by_index[1]
    assert ("known_sensor", "sensor_id") in by_index[2]
    assert ("not_in_future", "ts") in by_index[3]
    assert any(column == "Voltage" for _, column in by_index[4])
    not_json = httpx.post(
        f"{env.base}/predict", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400, not_json.text
    assert not_json.json()["readings"][0]["reasons"][0]["check"] == "not_json"


def test_swaps_the_champion_under_load_without_a_failed_request(
    env: types.SimpleNamespace,
) -> None:
    readings = wire(env.scored, "skab-swap", datetime.now(UTC) - timedelta(hours=1))
    versions: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(base_url=env.base, timeout=30) as client:
            i = 0
            while not stop.is_set():
                batch = readings[i % len(readings) : i % len(readings) + 4]
                i += 4
                try:
                    response = client.post("/predict", json=batch)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text}")
                    continue
                versions.extend(p["model_version"] for p in response.json())

    loops = [threading.Thread(target=client_loop) for _ in range(4)]
    for loop in loops:
        loop.start()
    try:
        time.sleep(1)  # load is on before the promotion
        won = env.promote(env.second.model_version)
        assert won.promoted, won.reason
        deadline = time.monotonic() + 60
        while env.second.model_version not in versions[-20:] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)  # and stays on after it
    finally:
        stop.set()
        for loop in loops:
            loop.join(timeout=30)
    assert failures == []
    assert env.second.model_version in versions, env.log.read_text()[-3000:]
    swap = versions.index(env.second.model_version)
    assert set(versions[:swap]) == {env.first.model_version}
    assert env.first.model_version not in versions[swap + 50 :]
    info = httpx.post(f"{env.base}/model", json={}, timeout=10).json()
    assert info["model_version"] == env.second.model_version
    assert not info["source"].startswith("models:/"), "not loaded from the BentoML store"
    metrics = httpx.get(f"{env.base}/metrics", timeout=10).text
    for name in (
        "bentoml_service_request_duration_seconds",
        "driftline_serving_predictions_total",
        "driftline_serving_model_version",
    ):
        assert name in metrics, name


def test_flags_known_faulty_rows_and_not_known_normal_ones(env: types.SimpleNamespace) -> None:
    """After the swap test: the champion trained on four valve1 recordings, on a fifth."""
    served, offline = score_through_service(env, env.second.model_version)
    np.testing.assert_allclose(served, offline, rtol=1e-6, atol=1e-7)
    truth = env.scored["label"].to_numpy()[env.settings.baseline_readings :] == 1
    flagged = served >= 0.5
    print(f"normal rows flagged {flagged[~truth].mean():.3f}, faulty {flagged[truth].mean():.3f}")
    assert flagged[~truth].mean() < 0.2
    assert flagged[truth].mean() > 0.6


def test_exports_the_bentoml_series_dashboards_query(env: types.SimpleNamespace) -> None:
    """Each of BentoML's series that dashboards and alert rules may name
    (``metric_names.BENTOML_METRICS``) is on /metrics once a prediction has been served, with
    the labels they select by."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.metric_names import BENTOML_METRICS

    readings = wire(env.scored.head(3), "skab-metrics", datetime.now(UTC) - timedelta(minutes=5))
    response = httpx.post(f"{env.base}/predict", json=readings, timeout=30)
    assert response.status_code == 200, response.text
    text = httpx.get(f"{env.base}/metrics", timeout=10).text
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    exported = {s.name for s in samples}
    assert exported >= BENTOML_METRICS, sorted(n for n in exported if n.startswith("bentoml_"))
    served = [s.labels for s in samples if s.name == "bentoml_service_request_total"]
    assert any(
        labels.get("endpoint") == "/predict" and labels.get("http_response_code") == "200"
        for labels in served
    ), served
    batched = [s.labels for s in samples if s.name == "bentoml_service_adaptive_batch_size_count"]
    assert any(labels.get("method_name") == "predict" for labels in batched), batched
