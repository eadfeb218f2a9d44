"""A real Prometheus, with Driftline's rules, scraping the four services on the real broker and
MariaDB while they handle a few hundred readings, some of them invalid."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import types
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from driftline.core.profile import load_profile
from driftline.core.records import DeadLetter
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.platform.broker import free_port
from driftline.platform.procs import start, stop_group
from driftline.platform.services import SERVICE_NAMES, service_script
from driftline.platform.up import ensure_reference
from driftline.simulate.plans import make_plan
from tests.streams import publish, read_topic

pytestmark = pytest.mark.integration

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
RULES = sorted(
    (Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules").glob("*.yml")
)
Sample = dict[tuple[tuple[str, str], ...], float]


def prometheus_config(ports: dict[str, int]) -> dict[str, object]:
    """deploy/prometheus/prometheus.yml's jobs and rules, on loopback, scraped every second."""
    jobs = [
        {
            "job_name": name,
            "honor_labels": True,
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}}],
        }
        for name, port in ports.items()
    ]
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in RULES],
        "scrape_configs": jobs,
    }


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


class PrometheusAPI:
    def __init__(self, base: str) -> None:
        self.base = base

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def query(self, expr: str) -> Sample:
        """Label set (without __name__) -> value of each series ``expr`` returns now."""
        body = httpx.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        return {
            tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(
                r["value"][1]
            )
            for r in body["data"]["result"]
        }

    def total(self, expr: str) -> float:
        return sum(self.query(expr).values())

    def rule_groups(self) -> list[dict[str, object]]:
        return httpx.get(f"{self.base}/api/v1/rules", timeout=10).json()["data"]["groups"]


@pytest.fixture(scope="module")
def mariadb_database(mariadb_server: str) -> Iterator[str]:
    name = f"driftline_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(f"{mariadb_server}/test")
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield f"{mariadb_server}/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, mariadb_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.SimpleNamespace]:
    """The services and Prometheus, once every reading sent has been validated and scraped."""
    if not PROMETHEUS_BIN.exists():
        pytest.fail(f"{PROMETHEUS_BIN} not found: run scripts/ops-tools.sh to install it")
    tmp = tmp_path_factory.mktemp("prometheus")
    run = uuid.uuid4().hex[:10]
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{run}",
        consumer_group_prefix=f"g{run}",
        data_dir=tmp / "data",
        database_url=mariadb_database,
        topic_partitions=2,
        batch_max_wait_ms=100,
        kafka_session_timeout_ms=2000,
        retrain_launcher="record",
        drift_window_size=30,
        mlflow_tracking_uri=f"sqlite:///{tmp / 'data' / 'mlflow.db'}",
    )
    features = load_profile(settings.profile_path).features
    ensure_reference(settings, features)

    ports = {name: free_port() for name in SERVICE_NAMES}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, port in ports.items():
            env = {**os.environ, **settings.to_env(), "DRIFTLINE_METRICS_PORT": str(port)}
            with open(tmp / f"{name}.log", "ab") as log:
                procs.append(
                    start([sys.executable, str(service_script(name))], env=env, stdout=log)
                )
        prometheus_port = free_port()
        ports["prometheus"] = prometheus_port
        config = tmp / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(ports)))
        with open(tmp / "prometheus.log", "ab") as log:
            procs.append(
                start(
                    [
                        str(PROMETHEUS_BIN),
                        f"--config.file={config}",
                        f"--storage.tsdb.path={tmp / 'tsdb'}",
                        f"--web.listen-address=127.0.0.1:{prometheus_port}",
                        "--log.level=warn",
                    ],
                    stdout=log,
                )
            )
        prometheus = PrometheusAPI(f"http://127.0.0.1:{prometheus_port}")
        wait_until(prometheus.ready, 30, "Prometheus to be ready")

        plan = make_plan(features, sensors=3, count=100, malformed_rate=0.1, seed=5)
        report = asyncio.run(publish(settings, plan))
        good = [m for m in report.messages if m.malformed is None]
        bad = [m for m in report.messages if m.malformed is not None]
        dead_letters = (
            "driftline_records_produced_total"
            f'{{service="validator", topic="{Topics(settings.topic_prefix).dead_letter}"}}'
        )

        def all_validated_and_scraped() -> bool:
            for proc in procs:
                assert proc.poll() is None, f"{proc.args} exited: see the logs in {tmp}"
            return (
                # every target scraped at least once (a slow first scrape is not a failure)
                len(prometheus.query("up")) == len(ports)
                and prometheus.total("driftline_readings_valid_total") == len(good)
                and prometheus.total(dead_letters) == len(bad)
                and prometheus.total("driftline_readings_stored_total") == report.sent
            )

        wait_until(all_validated_and_scraped, 120, "every reading validated and scraped")
        yield types.SimpleNamespace(
            settings=settings, prometheus=prometheus, good=good, bad=bad, ports=ports
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                stop_group(proc, timeout=15)


def test_every_target_is_up(stack: types.SimpleNamespace) -> None:
    up = stack.prometheus.query("up")
    assert {dict(labels)["job"]: value for labels, value in up.items()} == dict.fromkeys(
        stack.ports, 1.0
    )
    for labels in up:
        assert dict(labels)["service"] == dict(labels)["job"]


def test_reading_counts_are_what_the_validator_was_sent(stack: types.SimpleNamespace) -> None:
    prometheus = stack.prometheus
    assert stack.bad, "the plan sent no invalid reading"
    assert prometheus.total("driftline_readings_valid_total") == len(stack.good)
    # One count per failed check of each dead-lettered reading.
    dead = [
        DeadLetter.model_validate_json(m.value)
        for m in asyncio.run(
            read_topic(stack.settings, Topics(stack.settings.topic_prefix).dead_letter)
        )
    ]
    assert len(dead) == len(stack.bad)
    checks = Counter(reason.check for d in dead for reason in d.reasons)
    invalid = prometheus.query("driftline_readings_invalid_total")
    assert {dict(labels)["check"]: value for labels, value in invalid.items()} == checks
    # ingest offered every message, valid or not, to the raw store.
    assert prometheus.total("driftline_readings_stored_total") == len(stack.good) + len(stack.bad)


def test_each_sensor_has_its_last_reading_time(stack: types.SimpleNamespace) -> None:
    sensors = {json.loads(m.value)["sensor_id"] for m in stack.good}
    last = stack.prometheus.query("driftline_sensor_last_reading_timestamp_seconds")
    assert {dict(labels)["sensor_id"] for labels in last} == sensors
    assert all(time.time() - 300 < value <= time.time() for value in last.values())


def test_series_carry_the_service_labels_the_rules_group_by(
    stack: types.SimpleNamespace,
) -> None:
    prometheus = stack.prometheus
    wait_until(
        lambda: prometheus.query("service:driftline_readings_invalid:ratio_rate5m"),
        30,
        "the invalid-readings ratio to be recorded",
    )
    (labels,) = prometheus.query("service:driftline_readings_invalid:ratio_rate5m")
    assert labels == (("service", "validator"),)
    lag = prometheus.query("driftline_consumer_lag_messages")
    assert {dict(labels)["service"] for labels in lag} >= {"ingest", "validator"}
    assert "exported_service" not in {k for labels in lag for k, _ in labels}
    # Every service exports the unlabelled series of driftline.metrics, each with its label.
    in_flight = prometheus.query("driftline_retrains_in_flight")
    assert sorted(dict(labels)["service"] for labels in in_flight) == sorted(SERVICE_NAMES)
    assert all(value == 0 for value in in_flight.values())
    wait_until(lambda: prometheus.total("driftline_drift_windows_total") > 0, 60, "drift windows")
    windows = prometheus.query("driftline_drift_windows_total")
    assert {dict(labels)["service"] for labels in windows} == {"drift"}


def test_rules_are_loaded_and_evaluate_without_errors(stack: types.SimpleNamespace) -> None:
    expected = {g["name"] for path in RULES for g in yaml.safe_load(path.read_text())["groups"]}

    def evaluated() -> bool:
        groups = stack.prometheus.rule_groups()
        return {g["name"] for g in groups} == expected and all(
            r["health"] != "unknown" for g in groups for r in g["rules"]
        )

    wait_until(evaluated, 30, "every rule evaluated")
    for group in stack.prometheus.rule_groups():
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
