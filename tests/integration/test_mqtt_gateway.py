"""The MQTT gateway against a real Mosquitto, the real broker and a real raw store.

Services run as their own processes (as in production). The stream tests run a private
Mosquitto that queues without limit (as docs/events.md tells operators to configure theirs):
the machine's broker keeps Mosquitto's default of 1000 queued messages per session and drops
the rest, also the share of a shared subscription that goes to a replica away for a moment,
and it is shared with every other run on the machine. The small tests use the machine's.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
import sqlalchemy as sa

from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.mqtt.publisher import MqttPublisher
from driftline.platform.broker import EmbeddedBroker
from driftline.simulate.plans import make_plan
from driftline.simulate.publisher import SimulationReport, publish_simulation
from driftline.store.raw_store import RawStore, key_columns
from driftline.streaming.messages import Message
from tests.integration.test_outages import ServiceProcess
from tests.mosquitto import SYSTEM_URL, PrivateMosquitto, make_tls_files, reachable
from tests.processes import port_block
from tests.streams import read_topic, rows_stored, wait_for, wait_for_count
from tests.tcp_proxy import TcpProxy
from tests.unit.factories import NORMAL_VALUES

pytestmark = pytest.mark.integration


@pytest.fixture
def services():  # type: ignore[no-untyped-def]
    started: list[ServiceProcess] = []
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def system_mosquitto() -> str:
    if not reachable("127.0.0.1", 1883):
        pytest.fail("Mosquitto is not answering at 127.0.0.1:1883 (scripts/ensure-mosquitto.sh)")
    return SYSTEM_URL


@pytest.fixture
def mosquitto(tmp_path: Path):  # type: ignore[no-untyped-def]
    broker = PrivateMosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


def mqtt_settings(settings: Settings, url: str, replica: int = 1, **overrides: object) -> Settings:
    """The gateway's settings: this test's own topics, client id and shared group."""
    run = settings.topic_prefix
    values: dict[str, object] = {
        "mqtt_url": url,
        "mqtt_client_id": f"gw-{run}-{replica}",
        "mqtt_topic_filter": f"{run}/sensors/+/readings",
        "mqtt_topic_pattern": f"{run}/sensors/{{sensor_id}}/readings",
        "mqtt_shared_group": f"g{run}",
        "metrics_host": "127.0.0.1",
        "metrics_port": port_block(1),
        "health_check_seconds": 1,
        # Long enough for every restart here; the machine's broker forgets the session soon.
        "mqtt_session_expiry_seconds": 300,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def start(services: list[ServiceProcess], name: str, settings: Settings, log: Path):  # type: ignore[no-untyped-def]
    if settings.metrics_port is None:
        settings = settings.model_copy(update={"metrics_port": port_block(1)})
    service = ServiceProcess(name, settings, log).start()
    services.append(service)
    return service


async def publish_mqtt(
    settings: Settings, sensors: int, count_each: int, rate: float, seed: int = 0
) -> SimulationReport:
    profile = load_profile(settings.profile_path)
    plan = make_plan(profile.features, sensors=sensors, count=count_each, rate=rate, seed=seed)
    publisher = MqttPublisher(settings)
    await publisher.start()
    try:
        return await publish_simulation(publisher, "", plan, keep_sent=True)  # type: ignore[arg-type]
    finally:
        await publisher.stop()


def expected_ids(report: SimulationReport) -> set[str]:
    return {key_columns(Message("mqtt", 0, 0, m.key, m.value)).reading_id for m in report.messages}


async def metric(service: ServiceProcess, name: str, **labels: str) -> float:
    return (await service.metric(name, **labels)) or 0.0


async def test_readings_of_20_sensors_land_exactly_once_through_two_shared_replicas(
    make_settings, mariadb_url, mosquitto, tmp_path, services
):
    """10,000 readings of 20 sensors over Mosquitto, split between two gateway replicas by
    the shared subscription, land in MariaDB's raw store exactly once."""
    base = make_settings(database_url=mariadb_url)
    gateways = [
        start(services, "mqtt-gateway", mqtt_settings(base, mosquitto.url, r), tmp_path / f"g{r}")
        for r in (1, 2)
    ]
    ingest = start(services, "ingest", base, tmp_path / "ingest.log")
    for s in (*gateways, ingest):
        await s.wait_ready(True, 90, f"{s.name} ready")
    report = await publish_mqtt(mqtt_settings(base, mosquitto.url), 20, 500, rate=50.0)
    assert report.sent == 10_000 and len({m.key for m in report.messages}) == 20
    expected = expected_ids(report)
    assert len(expected) == 10_000

    store = RawStore.from_url(mariadb_url)
    try:
        try:
            await wait_for_count(lambda: rows_stored(store), 10_000, "readings stored")
        except AssertionError as exc:
            received = [await metric(g, "driftline_mqtt_messages_received_total") for g in gateways]
            raise AssertionError(f"{exc}; the replicas received {received}") from None
        assert store.reading_ids() == expected
        assert store.count() == 10_000
    finally:
        store.engine.dispose()
    received = [await metric(g, "driftline_mqtt_messages_received_total") for g in gateways]
    assert all(n > 0 for n in received), f"one replica got nothing: {received}"
    assert sum(received) == 10_000  # each message went to one replica, once
    for g in gateways:
        assert await metric(g, "driftline_mqtt_messages_in_flight") == 0
        assert await metric(g, "driftline_mqtt_messages_forwarded_total") == await metric(
            g, "driftline_mqtt_messages_received_total"
        )


async def test_gateway_killed_twice_mid_stream_loses_nothing(
    make_settings, mosquitto, tmp_path, services
):
    """SIGKILL twice while 20 sensors stream: the broker keeps the session and redelivers what
    was not acknowledged; the raw store holds every reading once."""
    base = make_settings(database_url=f"sqlite:///{tmp_path / 'raw.db'}")
    settings = mqtt_settings(base, mosquitto.url)
    gateway = start(services, "mqtt-gateway", settings, tmp_path / "gateway.log")
    ingest = start(services, "ingest", base, tmp_path / "ingest.log")
    for s in (gateway, ingest):
        await s.wait_ready(True, 90, f"{s.name} ready")
    store = RawStore.from_url(base.resolved_database_url)
    try:
        publishing = asyncio.create_task(publish_mqtt(settings, 20, 500, rate=40.0))
        for threshold in (2_000, 5_000):
            await wait_for(lambda t=threshold: rows_stored(store) >= t, 120, f"{threshold} stored")
            assert not publishing.done(), "the stream ended before the kill"
            gateway.kill()
            gateway.start()
        report = await publishing
        expected = expected_ids(report)
        assert len(expected) == 10_000
        await wait_for(lambda: rows_stored(store) >= 10_000, 120, "every reading stored")
        assert store.reading_ids() == expected
        assert store.count() == 10_000
        assert gateway.kills == 2
    finally:
        store.engine.dispose()


async def test_kafka_away_for_10s_the_gateway_stops_acknowledging_and_loses_nothing(
    make_settings, mosquitto, tmp_path, services
):
    """Kafka stops: the gateway stops acknowledging (it holds Receive Maximum messages, the
    broker keeps the rest), reports not ready, and forwards everything once Kafka is back."""
    # Kafka is away behind a proxy that stops and starts (a network cut): the broker keeps
    # its log, as a real Kafka does. Below the ephemeral range: no client's local end takes
    # the port while it is away.
    port = port_block(1)
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log", advertised_port=port).start()
    kafka = TcpProxy(port, broker.port).start()
    try:
        base = make_settings(
            kafka_bootstrap_servers=f"127.0.0.1:{port}",
            database_url=f"sqlite:///{tmp_path / 'raw.db'}",
            health_check_seconds=1,
        )
        settings = mqtt_settings(base, mosquitto.url, mqtt_receive_maximum=100)
        gateway = start(services, "mqtt-gateway", settings, tmp_path / "gateway.log")
        ingest = start(services, "ingest", base, tmp_path / "ingest.log")
        for s in (gateway, ingest):
            await s.wait_ready(True, 90, f"{s.name} ready")
        store = RawStore.from_url(base.resolved_database_url)
        try:
            first = await publish_mqtt(settings, 5, 60, rate=0)
            await wait_for(lambda: rows_stored(store) >= 300, 60, "the first readings stored")

            kafka.stop()
            await gateway.wait_ready(False, 30, "the gateway not ready without Kafka")
            assert "kafka" in await gateway.reasons()
            forwarded = await metric(gateway, "driftline_mqtt_messages_forwarded_total")
            received = await metric(gateway, "driftline_mqtt_messages_received_total")
            second = await publish_mqtt(settings, 5, 120, rate=0, seed=1)  # 600 readings

            async def holding() -> bool:
                return await metric(gateway, "driftline_mqtt_messages_in_flight") == 100

            await wait_for(holding, 30, "Receive Maximum (100) messages held unacknowledged")
            await asyncio.sleep(10)  # Kafka away for 10 s: the outage is what is tested
            assert gateway.alive()
            assert await metric(gateway, "driftline_mqtt_messages_forwarded_total") == forwarded
            # Nothing acknowledged, so the broker sent no more than Receive Maximum.
            assert await metric(gateway, "driftline_mqtt_messages_received_total") == received + 100
            assert await holding()

            kafka.start()
            expected = expected_ids(first) | expected_ids(second)
            await wait_for(
                lambda: rows_stored(store) >= 900, 120, "every reading stored after Kafka"
            )
            assert store.reading_ids() == expected

            async def drained() -> bool:
                return await metric(gateway, "driftline_mqtt_messages_in_flight") == 0

            await wait_for(drained, 30, "nothing left unacknowledged")
            await gateway.wait_ready(True, 60, "the gateway ready again")
            # One replica keeps each sensor's order on Kafka through the retried batch: the
            # raw store's rows of the readings sent during the outage (in the restarted
            # broker's log) are in each sensor's order of offsets.
            during = expected_ids(second)
            with store.engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT reading_id, sensor_id, seq FROM raw_readings "
                        "ORDER BY kafka_partition, kafka_offset"
                    )
                ).all()
            seqs: dict[str, list[int]] = {}
            for reading_id, sensor_id, seq in rows:
                if reading_id in during:
                    seqs.setdefault(sensor_id, []).append(seq)
            assert len(seqs) == 5 and sum(map(len, seqs.values())) == 600
            for sensor, got in seqs.items():
                assert got == sorted(got), f"{sensor} out of order on Kafka"
        finally:
            store.engine.dispose()
    finally:
        for s in services:
            s.stop()
        kafka.stop()
        broker.stop()


def mqtt_publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    """Publish each (topic, payload) with QoS 1 and wait for the broker's acknowledgement."""
    port = int(url.rsplit(":", 1)[1])
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_each_kind_of_bad_input_gets_its_clear_outcome(
    make_settings, system_mosquitto, tmp_path, services
):
    """A reading without sensor_id gets the topic's; a malformed payload is stored and
    dead-lettered by the validator (not_json); an oversized payload and a topic outside the
    pattern are dead-lettered by the gateway; every message is acknowledged."""
    base = make_settings(database_url=f"sqlite:///{tmp_path / 'raw.db'}")
    run = base.topic_prefix
    settings = mqtt_settings(base, system_mosquitto, mqtt_topic_filter=f"{run}/sensors/#")
    gateway = start(services, "mqtt-gateway", settings, tmp_path / "gateway.log")
    for name in ("ingest", "validator"):
        start(services, name, base, tmp_path / f"{name}.log")
    for s in services:
        await s.wait_ready(True, 90, f"{s.name} ready")
    good = orjson.dumps(reading("pump-001"))
    anonymous = reading("pump-002")
    del anonymous["sensor_id"]
    oversized = b'{"sensor_id": "pump-004", "pad": "' + b"x" * 100_000 + b'"}'
    await asyncio.to_thread(
        mqtt_publish,
        system_mosquitto,
        [
            (f"{run}/sensors/pump-001/readings", good),
            (f"{run}/sensors/pump-002/readings", orjson.dumps(anonymous)),
            (f"{run}/sensors/pump-003/readings", b"not json {"),
            (f"{run}/sensors/pump-004/readings", oversized),
            (f"{run}/sensors/pump-005/status", good),
        ],
    )
    topics = Topics(run)
    store = RawStore.from_url(base.resolved_database_url)
    try:
        await wait_for(lambda: rows_stored(store) >= 3, 60, "three messages stored")
        assert rows_stored(store) == 3
    finally:
        store.engine.dispose()

    async def letters() -> list[dict]:
        return [orjson.loads(m.value) for m in await read_topic(base, topics.dead_letter)]

    await wait_for(lambda: _length(letters(), 3), 60, "three dead letters")
    by_check = {d["reasons"][0]["check"]: d for d in await letters()}
    assert set(by_check) == {"not_json", "too_large", "topic_mismatch"}
    assert by_check["not_json"]["stage"] == "validator"
    assert by_check["not_json"]["key"] == "pump-003"
    assert by_check["too_large"]["stage"] == "mqtt-gateway"
    assert by_check["too_large"]["payload_bytes"] == len(oversized)
    assert by_check["too_large"]["payload_truncated"] is True
    mismatch = by_check["topic_mismatch"]
    assert mismatch["stage"] == "mqtt-gateway"
    assert mismatch["source"] == {
        "topic": f"mqtt:{run}/sensors/pump-005/status",
        "partition": -1,
        "offset": -1,
    }
    assert orjson.loads(mismatch["payload"]) == orjson.loads(good)

    valid = [orjson.loads(m.value) for m in await read_topic(base, topics.valid_readings)]
    assert sorted(v["sensor_id"] for v in valid) == ["pump-001", "pump-002"]
    assert await metric(gateway, "driftline_mqtt_messages_in_flight") == 0
    assert await metric(gateway, "driftline_mqtt_messages_received_total") == 5
    assert await metric(gateway, "driftline_mqtt_messages_forwarded_total") == 3
    for check in ("too_large", "topic_mismatch"):
        assert await metric(gateway, "driftline_mqtt_messages_rejected_total", check=check) == 1


async def _length(result, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await result) >= n


def reading(sensor_id: str) -> dict[str, object]:
    now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return {"sensor_id": sensor_id, "ts": now, "seq": 1, "values": dict(NORMAL_VALUES)}


async def test_tls_and_password_and_the_password_is_never_logged(make_settings, tmp_path, services):
    """mqtts:// with a CA file and a username/password: readings arrive, and the password
    appears in no log line, also when the broker refuses a wrong one."""
    password = f"pw-{uuid.uuid4().hex}"
    files = make_tls_files(tmp_path / "tls", "gateway", password)
    broker = PrivateMosquitto(tmp_path / "mosquitto")
    broker.conf.write_text(
        broker.conf.read_text().replace(
            f"listener {broker.port} 127.0.0.1\nallow_anonymous true\n",
            f"listener {broker.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {files['passwd']}\ncafile {files['ca']}\n"
            f"certfile {files['cert']}\nkeyfile {files['key']}\n",
        )
    )
    broker.start()
    try:
        base = make_settings(database_url=f"sqlite:///{tmp_path / 'raw.db'}")
        url = f"mqtts://127.0.0.1:{broker.port}"
        settings = mqtt_settings(
            base, url, mqtt_username="gateway", mqtt_password=password, mqtt_ca_file=files["ca"]
        )
        settings = Settings(**{**settings.model_dump(), "mqtt_password": password})
        gateway = start(services, "mqtt-gateway", settings, tmp_path / "gateway.log")
        ingest = start(services, "ingest", base, tmp_path / "ingest.log")
        for s in (gateway, ingest):
            await s.wait_ready(True, 90, f"{s.name} ready")
        report = await publish_mqtt(settings, 2, 50, rate=0)
        store = RawStore.from_url(base.resolved_database_url)
        try:
            await wait_for(lambda: rows_stored(store) >= 100, 60, "the readings stored")
            assert store.reading_ids() == expected_ids(report)
        finally:
            store.engine.dispose()

        wrong = Settings(
            **{**settings.model_dump(), "mqtt_password": "wrong-" + password},
        ).model_copy(update={"mqtt_client_id": "gw-wrong", "metrics_port": port_block(1)})
        refused = start(services, "mqtt-gateway", wrong, tmp_path / "refused.log")
        await wait_for(lambda: "refused" in refused.log_text(), 60, "the refusal logged")
        assert "mqtt" in await refused.reasons()
        for s in services:
            s.stop()
        for log in (tmp_path / "gateway.log", tmp_path / "refused.log"):
            assert password not in log.read_text(), f"the password is in {log}"
    finally:
        broker.stop()
