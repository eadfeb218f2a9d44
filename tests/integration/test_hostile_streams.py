"""What a broken or malicious sensor sends (tests/hostile_messages.py), through the real
ingest, validator, drift and retrain-trigger on the real broker and both databases: after
each hostile message a good reading still reaches every sink.

Each Hypothesis example sends, for a sensor of its own, hostile messages each followed by a
good reading (ten good ones in all: one drift window). The hostile payloads go to the raw
topic and, as they are, to the valid-readings topic (drift's input) and the drift-events
topic (the trigger's). Then: no service
stopped; every message (hostile or good) is in the raw store; every good reading is on the
valid topic; every hostile raw message is dead-lettered by the validator with a reason that
is not ``internal_error`` (decoding is bounded, nothing crashed); every hostile message on the
valid topic is dead-lettered by drift, and each on the drift-events topic by the trigger;
drift closes the sensor's window (a drift event) and the trigger decides on it.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.core.records import DeadLetter, DriftEvent
from driftline.simulate.signals import SyntheticPump
from driftline.store.raw_store import RawStore, message_id
from driftline.store.tables import trigger_decisions
from driftline.streaming.kafka import client_options
from driftline.streaming.messages import Message
from tests.hostile_messages import Hostile, hostile_message
from tests.integration.test_fuzz_streams import Pipeline, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

WINDOW = 10  # good readings per example: one drift window of its sensor
EXAMPLES = 6


class HostilePipeline(Pipeline):
    """ingest, validator and drift; collects valid readings, dead letters and drift events."""

    services = ("ingest", "validator", "drift", "retrain-trigger")

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.events: list[DriftEvent] = []

    async def _start(self) -> None:
        await super()._start()
        self.events_consumer = AIOKafkaConsumer(
            self.topics.drift_events,
            **client_options(self.settings),
            group_id=self.settings.group_id("hostile-events"),
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=500,
        )
        await self.events_consumer.start()
        self.tasks.append(asyncio.create_task(self._events(), name="events"))

    async def _events(self) -> None:
        while not self.stop.is_set():
            polled = await self.events_consumer.getmany(timeout_ms=200)
            for records in polled.values():
                for r in records:
                    try:  # hostile bytes are put on this topic too (for the trigger)
                        self.events.append(DriftEvent.model_validate_json(r.value or b""))
                    except ValidationError:
                        self.unparsed += 1

    def send(self, items: list[tuple[str, bytes | None, bytes]]) -> list[Message]:
        async def _send() -> list[Message]:
            futures = [await self.producer.send(t, v, key=k) for t, k, v in items]
            sent = await asyncio.gather(*futures)
            return [
                Message(t, s.partition, s.offset, k, v)
                for s, (t, k, v) in zip(sent, items, strict=True)
            ]

        return self.call(_send())

    def close(self) -> None:
        self.call(self.events_consumer.stop())
        super().close()


@pytest.fixture
def hostile_pipeline(
    make_settings, database_url, tmp_path
) -> Iterator[tuple[HostilePipeline, RawStore]]:  # type: ignore[no-untyped-def]
    settings = make_settings(
        database_url=database_url,
        batch_max_records=200,
        reference_path=tmp_path / "ref.parquet",
        drift_window_size=WINDOW,
        drift_window_seconds=3600,
    )
    pd.DataFrame([v for _, v, _ in SyntheticPump(seed=5).rows(2000)]).to_parquet(
        settings.resolved_reference_path
    )
    running = HostilePipeline(settings)
    running.start()
    store = RawStore.from_url(database_url)
    try:
        yield running, store
    finally:
        running.close()
        store.engine.dispose()


def decided(store: RawStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(trigger_decisions.c.drift_event_id)).scalars())


def good_doc(sensor: str, seq: int, values: dict[str, float]) -> dict[str, object]:
    ts = datetime.now(UTC) - timedelta(seconds=60) + timedelta(milliseconds=seq)
    return {"sensor_id": sensor, "ts": ts.isoformat(), "seq": seq, "values": values}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_after_each_hostile_message_a_good_reading_reaches_every_sink(
    hostile_pipeline: tuple[HostilePipeline, RawStore], data: st.DataObject
) -> None:
    running, store = hostile_pipeline
    topics = running.topics
    sensor = f"pump-{uuid.uuid4().hex[:8]}"
    rows = [v for _, v, _ in SyntheticPump(seed=len(running.valid)).rows(WINDOW)]
    goods = [good_doc(sensor, i, values) for i, values in enumerate(rows)]
    count = data.draw(st.integers(1, WINDOW), label="hostile messages")
    hostile: list[Hostile] = [
        data.draw(
            hostile_message(copy.deepcopy(goods[i]), running.settings.max_message_bytes),
            label=f"hostile {i}",
        )
        for i in range(count)
    ]
    items: list[tuple[str, bytes | None, bytes]] = []
    for i, doc in enumerate(goods):
        if i < count:
            h = hostile[i]
            items.append((topics.raw_readings, h.key, h.value))
            items.append((topics.valid_readings, h.key, h.value))
            items.append((topics.drift_events, h.key, h.value))
        items.append((topics.raw_readings, sensor.encode(), orjson.dumps(doc)))
    sent = running.send(items)
    hostile_sent = [m for m in sent if m.value not in {orjson.dumps(d) for d in goods}]
    bad_raw = {(m.partition, m.offset) for m in hostile_sent if m.topic == topics.raw_readings}
    bad_valid = {(m.partition, m.offset) for m in hostile_sent if m.topic == topics.valid_readings}
    bad_events = {(m.partition, m.offset) for m in hostile_sent if m.topic == topics.drift_events}
    raw_sent = [m for m in sent if m.topic == topics.raw_readings]

    def letters(
        stage: str, places: set[tuple[int, int]], topic: str
    ) -> dict[tuple[int, int], DeadLetter]:
        return {
            (d.source.partition, d.source.offset): d
            for d in list(running.dead)
            if d.stage == stage
            and d.source.topic == topic
            and (d.source.partition, d.source.offset) in places
        }

    wait_until(
        lambda: len([v for v in list(running.valid) if v.sensor_id == sensor]) >= WINDOW,
        90,
        "every good reading on the valid topic",
        running,
    )
    wait_until(
        lambda: (
            len(letters("validator", bad_raw, topics.raw_readings)) == len(bad_raw)
            and len(letters("drift", bad_valid, topics.valid_readings)) == len(bad_valid)
            and len(letters("retrain-trigger", bad_events, topics.drift_events)) == len(bad_events)
        ),
        90,
        "every hostile message dead-lettered",
        running,
    )
    wait_until(
        lambda: any(e.sensor_id == sensor for e in list(running.events)),
        90,
        "the sensor's drift window",
        running,
    )
    expected = {message_id(m.key, m.value) for m in raw_sent}
    wait_until(lambda: expected <= store.message_ids(), 90, "every message stored", running)
    assert not running.crashed()
    for letter in letters("validator", bad_raw, topics.raw_readings).values():
        checks = {r.check for r in letter.reasons}
        assert checks and "internal_error" not in checks, letter
    for letter in letters("drift", bad_valid, topics.valid_readings).values():
        assert {r.check for r in letter.reasons} == {"bad_record"}, letter
    for letter in letters("retrain-trigger", bad_events, topics.drift_events).values():
        assert {r.check for r in letter.reasons} == {"bad_record"}, letter
    event_ids = {e.event_id for e in list(running.events) if e.sensor_id == sensor}
    wait_until(lambda: event_ids <= decided(store), 60, "the trigger's decision", running)
    valid = [v for v in list(running.valid) if v.sensor_id == sensor]
    assert sorted(v.seq for v in valid) == list(range(WINDOW))
