"""Dependencies going away: Kafka not up yet at start, Kafka gone for a while, the database
down under ingest, the pipeline failing under the trigger. Services run as their own processes
(as in production) with /readyz and /metrics served on their metrics port.

The embedded broker (Tansu) keeps everything in memory: restarted on the same port it comes
back empty (no topics, no committed offsets). The broker-outage test therefore checks what a
restart of that broker can show (the service survives, reports not ready, reconnects, and
processes what is published after the return), not that records published before the outage
survive it: that is a property of a real Kafka's replicated log, not of the service.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from driftline.core.profile import load_profile
from driftline.core.records import DriftEvent, RetrainRequest
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.drift.reference import build_reference
from driftline.platform.broker import EmbeddedBroker, free_port, wait_for_port
from driftline.platform.procs import start, stop_group
from driftline.simulate.plans import make_plan
from driftline.simulate.publisher import SimulationReport
from driftline.store.raw_store import RawStore, key_columns
from driftline.store.tables import retrain_runs, trigger_decisions
from driftline.streaming.kafka import client_options, make_producer
from driftline.streaming.messages import Message
from tests import processes
from tests.integration.test_trigger_launches_pipeline import drift_event
from tests.processes import port_block
from tests.streams import publish, rows_stored, running, wait_for

pytestmark = pytest.mark.integration


class ServiceProcess(processes.ServiceProcess):
    """A service in its own process, its health and metrics served on the settings' port."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def start(self) -> ServiceProcess:
        super().start()
        return self

    async def get(self, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                return await client.get(self.base + path)
        except httpx.HTTPError:
            return None  # not serving yet

    async def ready(self) -> bool | None:
        """True/False from /readyz; None while nothing answers."""
        response = await self.get("/readyz")
        if response is None:
            return None
        assert response.status_code in (200, 503), response.text
        body = response.json()
        assert body["ready"] == (response.status_code == 200)
        return response.status_code == 200

    async def reasons(self) -> dict[str, str]:
        response = await self.get("/readyz")
        assert response is not None
        return response.json()["services"][self.name]["reasons"]

    async def metric(self, name: str, **labels: str) -> float | None:
        response = await self.get("/metrics")
        assert response is not None and response.status_code == 200
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return sample.value
        return None

    async def wait_ready(self, want: bool, timeout: float, what: str) -> None:
        try:
            await wait_for(lambda: _is(self.ready(), want), timeout, what)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; {self.name} log ends:\n{self.log_text()[-3000:]}"
            ) from None


async def _is(result, want: bool) -> bool:  # type: ignore[no-untyped-def]
    return (await result) is want


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for s in started:
        s.stop()


def readings(settings: Settings, count: int, seed: int):  # type: ignore[no-untyped-def]
    profile = load_profile(settings.profile_path)
    return make_plan(profile.features, sensors=3, count=count, seed=seed)


def message_ids(settings: Settings, report: SimulationReport) -> set[str]:
    topic = Topics(settings.topic_prefix).raw_readings
    return {
        key_columns(Message(topic, *m.place, m.key, m.value)).message_id for m in report.messages
    }


async def committed(settings: Settings, group: str, topic: str) -> int:
    """The sum of ``group``'s committed offsets over ``topic`` (no join: an OffsetFetch only)."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group)
    await consumer.start()
    try:
        total = 0
        for p in range(settings.topic_partitions):
            total += await consumer.committed(TopicPartition(topic, p)) or 0
        return total
    finally:
        await consumer.stop()


async def test_broker_not_up_at_start(make_settings, tmp_path, services):
    """Kafka comes up after the service: it waits with backoff, not ready, then processes."""
    port = port_block(1)
    settings = make_settings(
        kafka_bootstrap_servers=f"127.0.0.1:{port}",
        database_url=f"sqlite:///{tmp_path / 'raw.db'}",
        metrics_port=port_block(1),
        health_check_seconds=1,
    )
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log").start()
    services.append(ingest)
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log")
    try:
        await wait_for(lambda: ingest.log_text().count("retrying in") >= 3, 60, "retries logged")
        assert ingest.alive(), ingest.log_text()
        assert (await ingest.get("/livez")).status_code == 200  # type: ignore[union-attr]
        assert await ingest.ready() is False
        assert "kafka" in await ingest.reasons()
        assert await ingest.metric("driftline_service_ready", service="ingest") == 0
        failures = await ingest.metric(
            "driftline_dependency_failures_total", service="ingest", dependency="kafka"
        )
        assert failures and failures >= 1

        broker.start()
        await ingest.wait_ready(True, 60, "ingest ready once Kafka is up")
        assert await ingest.metric("driftline_service_ready", service="ingest") == 1
        report = await publish(settings, readings(settings, 300, seed=1))
        store = RawStore.from_url(settings.resolved_database_url)
        await wait_for(lambda: rows_stored(store) >= report.sent, 60, "every reading stored")
        assert store.message_ids() == message_ids(settings, report)
        store.engine.dispose()
        assert "Traceback" not in ingest.log_text()
    finally:
        ingest.stop()
        broker.stop()


async def test_every_service_waits_for_kafka_at_start(make_settings, skab_dir, tmp_path, services):
    """validator, drift and retrain-trigger too: started before Kafka, they wait (alive, not
    ready), then become ready."""
    port = port_block(1)
    settings = make_settings(
        kafka_bootstrap_servers=f"127.0.0.1:{port}",
        database_url=f"sqlite:///{tmp_path / 'raw.db'}",
        reference_path=tmp_path / "ref.parquet",
        health_check_seconds=1,
    )
    profile = load_profile(settings.profile_path)
    build_reference(
        [skab_dir / "anomaly-free" / "anomaly-free.csv"],
        profile.features,
        settings.resolved_reference_path,
    )
    for name in ("validator", "drift", "retrain-trigger"):
        services.append(
            ServiceProcess(name, settings, tmp_path / f"{name}.log", metrics=True).start()
        )
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log")
    try:
        for s in services:
            await wait_for(
                lambda s=s: s.log_text().count("retrying in") >= 3, 60, f"{s.name} retries"
            )
            assert s.alive() and await s.ready() is False, s.log_text()
        broker.start()
        for s in services:
            await s.wait_ready(True, 90, f"{s.name} ready once Kafka is up")
            assert await s.metric("driftline_service_ready", service=s.name) == 1
            assert "Traceback" not in s.log_text(), s.log_text()
    finally:
        for s in services:
            s.stop()
        broker.stop()


async def test_broker_gone_for_a_while(make_settings, tmp_path, services):
    """The broker stops mid-stream and returns (empty: Tansu is memory-only) on the same port:
    ingest and validator stay up, report not ready, reconnect, and process what comes next."""
    port = port_block(1)
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    settings = make_settings(
        kafka_bootstrap_servers=f"127.0.0.1:{port}",
        database_url=f"sqlite:///{tmp_path / 'raw.db'}",
        health_check_seconds=1,
        # A consumer that came back connected but never fetched (seen once here) is replaced
        # well within the waits below.
        consumer_stuck_seconds=10,
    )
    topics = Topics(settings.topic_prefix)
    ingest = ServiceProcess("ingest", settings, tmp_path / "i.log", metrics=True).start()
    validator = ServiceProcess("validator", settings, tmp_path / "v.log", metrics=True).start()
    services += [ingest, validator]
    store = RawStore.from_url(settings.resolved_database_url)
    try:
        for s in (ingest, validator):
            await s.wait_ready(True, 90, f"{s.name} ready")
        before = await publish(settings, readings(settings, 300, seed=2))
        await wait_for(lambda: rows_stored(store) >= before.sent, 60, "the first readings stored")

        broker.stop()
        for s in (ingest, validator):
            await s.wait_ready(False, 30, f"{s.name} not ready without Kafka")
            assert "kafka" in await s.reasons()
        await asyncio.sleep(5)  # away for a while: long enough for several failed retries
        assert ingest.alive() and validator.alive()

        broker.start()
        for s in (ingest, validator):
            await s.wait_ready(True, 90, f"{s.name} ready again")
        after = await publish(settings, readings(settings, 300, seed=3))
        expected = message_ids(settings, before) | message_ids(settings, after)
        await wait_for(lambda: rows_stored(store) >= len(expected), 90, "the later readings stored")
        assert store.message_ids() == expected

        async def validated() -> int:
            from tests.streams import read_topic

            return len(await read_topic(settings, topics.valid_readings, timeout=10))

        await wait_for(lambda: _at_least(validated(), after.sent), 60, "later readings validated")
        assert ingest.alive() and validator.alive()
    finally:
        store.engine.dispose()
        for s in (ingest, validator):
            s.stop()
        broker.stop()


async def _at_least(result, n: int) -> bool:  # type: ignore[no-untyped-def]
    return (await result) >= n


class PrivateMariaDB:
    """A MariaDB server of the test's own (own datadir, port and socket), to stop and start:
    the shared server on 3306 serves other tests and must stay up."""

    def __init__(self, base: Path, options: tuple[str, ...] = ()) -> None:
        self.options = options  # more server options, e.g. --local-infile=0
        self.datadir = base / "mariadb"
        self.rundir = Path(tempfile.mkdtemp(prefix="mdb"))  # sockets need a short path
        self.port = port_block(1)
        self.log_path = base / "mariadb.log"
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def start(self) -> PrivateMariaDB:
        with open(self.log_path, "ab") as log:
            self.proc = start(
                [
                    "/usr/sbin/mariadbd",
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.rundir / 'mysqld.sock'}",
                    f"--pid-file={self.rundir / 'mysqld.pid'}",
                    "--user=root",
                    "--skip-grant-tables",
                    "--skip-log-bin",
                    "--innodb-buffer-pool-size=32M",
                    "--skip-name-resolve",
                    *self.options,
                ],
                stdout=log,
            )
        wait_for_port("127.0.0.1", self.port, 60)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            stop_group(proc, timeout=60)


@pytest.fixture
def private_mariadb(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    db = PrivateMariaDB(tmp_path).start()
    try:
        yield db
    finally:
        db.stop()
        shutil.rmtree(db.rundir, ignore_errors=True)


@pytest.mark.timeout(600)
async def test_database_down_under_ingest(make_settings, tmp_path, private_mariadb, services):
    """While the database is down ingest commits nothing and is not ready; it resumes when the
    database returns; and killed while it is down, it loses nothing and stores nothing twice."""
    db = private_mariadb
    admin = sa.create_engine(f"{db.url}/mysql")
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE DATABASE driftline"))
    admin.dispose()
    settings = make_settings(
        database_url=f"{db.url}/driftline",
        metrics_port=port_block(1),
        health_check_seconds=1,
        batch_max_records=200,
    )
    topic = Topics(settings.topic_prefix).raw_readings
    group = settings.group_id("ingest")
    store = RawStore.from_url(settings.resolved_database_url)
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log").start()
    services.append(ingest)
    try:
        await ingest.wait_ready(True, 90, "ingest ready")
        first = await publish(settings, readings(settings, 400, seed=4))
        await wait_for(lambda: rows_stored(store) >= first.sent, 60, "the first readings stored")
        await wait_for(
            lambda: _equals(committed(settings, group, topic), first.sent), 30, "offsets committed"
        )

        # Down while ingest runs: back-pressure, not ready; up again: it resumes.
        failures = ingest.log_text().count("retrying in")
        db.stop()
        second = await publish(settings, readings(settings, 400, seed=5))
        await ingest.wait_ready(False, 30, "ingest not ready without its database")
        assert "database" in await ingest.reasons()
        assert await ingest.metric("driftline_service_ready", service="ingest") == 0
        assert await ingest.metric(
            "driftline_dependency_failures_total", service="ingest", dependency="database"
        )
        await wait_for(
            lambda: ingest.log_text().count("retrying in") > failures,
            30,
            "the failing batch logged",
        )
        await asyncio.sleep(3)  # it keeps retrying meanwhile; none of it may be committed
        assert await committed(settings, group, topic) == first.sent
        db.start()
        await ingest.wait_ready(True, 60, "ingest ready with its database back")
        total = first.sent + second.sent
        await wait_for(
            lambda: rows_stored(store) >= total, 60, "the readings sent meanwhile stored"
        )
        await wait_for(
            lambda: _equals(committed(settings, group, topic), total), 30, "offsets committed"
        )

        # Down again, and ingest killed meanwhile: the uncommitted batch is redelivered.
        failures = ingest.log_text().count("retrying in")
        db.stop()
        third = await publish(settings, readings(settings, 400, seed=6))
        await wait_for(
            lambda: ingest.log_text().count("retrying in") > failures,
            30,
            "the failing batch logged",
        )
        assert await committed(settings, group, topic) == total
        ingest.kill()
        db.start()
        ingest.start()
        expected = message_ids(settings, first) | message_ids(settings, second)
        expected |= message_ids(settings, third)
        await wait_for(lambda: rows_stored(store) >= len(expected), 90, "every reading stored")
        await ingest.wait_ready(True, 60, "the restarted ingest ready")
        await asyncio.sleep(2)  # a redelivery would show as extra rows now
        assert store.count() == len(expected)  # every distinct message once
        assert store.message_ids() == expected
        assert ingest.alive()
    finally:
        ingest.stop()
        store.engine.dispose()


async def _equals(result, n: int) -> bool:  # type: ignore[no-untyped-def]
    return (await result) == n


def drift_events(sensor: str, n: int = 3) -> list[DriftEvent]:
    """``n`` fully drifted windows of ``sensor`` in a row, the last ending an hour ago."""
    end = datetime.now(UTC) - timedelta(hours=1)
    step = timedelta(minutes=5)
    return [drift_event(sensor, end - (n - i) * step, end - (n - i - 1) * step) for i in range(n)]


def runs(store: RawStore) -> list[dict]:
    with store.engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(sa.select(retrain_runs).order_by(retrain_runs.c.requested_at))
        ]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def send_drift(settings: Settings, events: list[DriftEvent]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        topic = Topics(settings.topic_prefix).drift_events
        for e in events:
            await (await producer.send(topic, e.to_bytes(), key=e.sensor_id.encode()))
    finally:
        await producer.stop()


@pytest.mark.timeout(300)
async def test_trigger_records_and_retries_a_launch_that_fails(make_settings, mariadb_url):
    """KFP unreachable: each launch fails for real; recorded, counted, relaunched once."""
    settings = make_settings(
        database_url=mariadb_url,
        retrain_launcher="kfp",
        kfp_host=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        trigger_retry_attempts=1,
        trigger_retry_backoff_seconds=0.5,
    )
    store = RawStore.from_url(mariadb_url)
    store.create_tables()
    failed_before = sample("driftline_retrain_runs_total", outcome="failed")
    launch_failures_before = sample("driftline_retrain_launch_failures_total", launcher="kfp")
    async with running(settings, ["retrain-trigger"]):
        await send_drift(settings, drift_events("pump-001"))
        await wait_for(lambda: len(runs(store)) >= 2, 120, "the launch and its relaunch")
        await asyncio.sleep(2)  # one relaunch only: a third run would show by now
    recorded = runs(store)
    assert [r["status"] for r in recorded] == ["failed", "failed"]
    assert all(r["launcher"] == "kfp" for r in recorded)
    assert all("launch failed" in r["detail"] and r["finished_at"] for r in recorded)
    first, second = (RetrainRequest.model_validate_json(r["request"]) for r in recorded)
    assert second.reason.startswith(f"relaunch 1 of {first.request_id}")
    assert (second.data_start, second.data_end) == (first.data_start, first.data_end)
    assert sample("driftline_retrain_runs_total", outcome="failed") - failed_before == 2
    assert (
        sample("driftline_retrain_launch_failures_total", launcher="kfp") - launch_failures_before
        == 2
    )
    with store.engine.connect() as conn:
        fired = conn.execute(
            sa.select(trigger_decisions.c.request_id).where(trigger_decisions.c.fired)
        ).all()
    assert [r[0] for r in fired] == [first.request_id]  # one decision fired, recorded once
    store.engine.dispose()


@pytest.mark.timeout(600)
async def test_trigger_retries_a_pipeline_run_that_fails(make_settings, mariadb_url):
    """The local pipeline fails for real (no readings in the raw store: no dataset to build):
    the run is recorded failed with its exit code, counted, relaunched once, then given up."""
    settings = make_settings(
        database_url=mariadb_url,
        retrain_launcher="kfp-local",
        trigger_retry_attempts=1,
        trigger_retry_backoff_seconds=0.5,
    )
    store = RawStore.from_url(mariadb_url)
    store.create_tables()
    failed_before = sample("driftline_retrain_runs_total", outcome="failed")
    retries_before = sample("driftline_retrain_retries_total", launcher="kfp-local")
    async with running(settings, ["retrain-trigger"]):
        await send_drift(settings, drift_events("pump-002"))
        await wait_for(
            lambda: [r["status"] for r in runs(store)] == ["failed", "failed"],
            300,
            "the run and its relaunch to fail",
        )
        await asyncio.sleep(2)
    recorded = runs(store)
    assert len(recorded) == 2
    assert all(
        r["detail"].startswith("exit code") and r["detail"] != "exit code 0" for r in recorded
    )
    assert sample("driftline_retrain_runs_total", outcome="failed") - failed_before == 2
    assert sample("driftline_retrain_retries_total", launcher="kfp-local") - retries_before == 1
    store.engine.dispose()


async def test_database_not_up_at_start(make_settings, tmp_path, private_mariadb, services):
    """Ingest started before its database waits for it (no crash loop), then works."""
    db = private_mariadb
    admin = sa.create_engine(f"{db.url}/mysql")
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE DATABASE driftline"))
    admin.dispose()
    db.stop()
    settings = make_settings(
        database_url=f"{db.url}/driftline", metrics_port=port_block(1), health_check_seconds=1
    )
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log").start()
    services.append(ingest)
    await wait_for(lambda: ingest.log_text().count("retrying in") >= 3, 60, "retries logged")
    assert "creating tables failed" in ingest.log_text()
    assert ingest.alive() and await ingest.ready() is False
    db.start()
    await ingest.wait_ready(True, 60, "ingest ready once its database is up")
    report = await publish(settings, readings(settings, 100, seed=7))
    store = RawStore.from_url(settings.resolved_database_url)
    await wait_for(lambda: rows_stored(store) >= report.sent, 60, "the readings stored")
    assert store.message_ids() == message_ids(settings, report)
    store.engine.dispose()
