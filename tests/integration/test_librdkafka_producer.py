"""A client that is not aiokafka: sensors publishing with librdkafka (the confluent-kafka wheel)
to the broker the tests run (the embedded one unless KAFKA_BOOTSTRAP_SERVERS is set), through
the real ingest and validator. docs/kafka.md says which client versions the embedded broker
serves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import confluent_kafka
import orjson
import pytest

from driftline.store.raw_store import RawStore, message_id
from driftline.streaming.messages import Message
from tests.integration.test_fuzz_streams import Pipeline, stored_ids, wait_until
from tests.unit.factories import NORMAL_VALUES

pytestmark = pytest.mark.integration

READINGS = 60


@pytest.fixture
def pipeline(make_settings, database_url) -> Iterator[tuple[Pipeline, RawStore]]:  # type: ignore[no-untyped-def]
    settings = make_settings(database_url=database_url)
    running = Pipeline(settings)
    running.start()
    store = RawStore.from_url(database_url)
    try:
        yield running, store
    finally:
        running.close()
        store.engine.dispose()


def test_readings_published_with_librdkafka_are_stored_and_validated(
    pipeline: tuple[Pipeline, RawStore],
) -> None:
    running, store = pipeline
    version, _ = confluent_kafka.libversion()
    print(f"\nlibrdkafka {version}, confluent-kafka {confluent_kafka.version()}")
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": running.settings.kafka_bootstrap_servers,
            "acks": "all",
            "enable.idempotence": False,  # the embedded broker refuses InitProducerId
            "client.id": "librdkafka-sensor",
        }
    )
    delivered: list[Message] = []
    errors: list[str] = []

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(
                Message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())
            )

    start = datetime.now(UTC) - timedelta(minutes=5)
    sensors = [f"pump-rdk-{i}" for i in range(3)]
    for n in range(READINGS):
        sensor = sensors[n % 3]
        doc = {
            "sensor_id": sensor,
            "ts": (start + timedelta(seconds=n)).isoformat(),
            "seq": n,
            "values": NORMAL_VALUES,
        }
        producer.produce(
            running.topics.raw_readings,
            orjson.dumps(doc),
            key=sensor.encode(),
            on_delivery=on_delivery,
        )
    # And one a broken sensor sends: librdkafka's bytes are dead-lettered like aiokafka's.
    producer.produce(
        running.topics.raw_readings, b"\xef\xbb\xbf{}", key=b"pump-rdk-0", on_delivery=on_delivery
    )
    assert producer.flush(60) == 0
    assert errors == []
    assert len(delivered) == READINGS + 1

    wait_until(
        lambda: len([v for v in list(running.valid) if v.sensor_id in sensors]) >= READINGS,
        90,
        "every reading validated",
        running,
    )
    expected = {message_id(m.key, m.value) for m in delivered}
    wait_until(lambda: expected <= stored_ids(store), 90, "every message stored", running)
    bom = delivered[-1]
    wait_until(
        lambda: any(
            (d.source.partition, d.source.offset) == (bom.partition, bom.offset)
            for d in list(running.dead)
        ),
        60,
        "the BOM message dead-lettered",
        running,
    )
    (letter,) = [
        d
        for d in running.dead
        if (d.source.partition, d.source.offset) == (bom.partition, bom.offset)
    ]
    assert [r.check for r in letter.reasons] == ["bad_encoding"]
    valid = [v for v in list(running.valid) if v.sensor_id in sensors]
    assert sorted(v.seq for v in valid) == list(range(READINGS))
