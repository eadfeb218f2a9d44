"""Generated bad input (tests/fuzz_messages.py) through the real ingest and validator on the
real broker and real databases.

The services run once per test in a background event loop; each Hypothesis example publishes
a few hundred messages (valid readings, resent copies, bad input of every kind, shuffled) and
waits until every one is accounted for. Then: no service crashed; every message is in the raw
store; every message is on exactly one of the valid and dead-letter topics, a dead letter with
reasons; every valid reading is on the valid topic exactly once (no crash here, so no
at-least-once redelivery); every bad one is dead-lettered with a reason that names its fault.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from collections import Counter
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from aiokafka import AIOKafkaConsumer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, ProgrammingError

from driftline.core.profile import load_profile
from driftline.core.records import DeadLetter, ValidReading
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.platform.services import load_service
from driftline.store.raw_store import RawStore, key_columns
from driftline.streaming.dead_letters import PAYLOAD_LIMIT
from driftline.streaming.kafka import client_options, ensure_topics, make_producer
from driftline.streaming.messages import Message
from tests.fuzz_messages import Case, message_cases

pytestmark = [
    pytest.mark.integration,
    # The services' threads use the random module while Hypothesis draws; it warns of that.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

T = TypeVar("T")
EXAMPLES = 8
MIN_MESSAGES, MAX_MESSAGES = 150, 400
totals: Counter[str] = Counter()


class Pipeline:
    """ingest and validator in a background event loop, a producer, and a collector of the
    valid and dead-letter topics."""

    services: tuple[str, ...] = ("ingest", "validator")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.valid: list[ValidReading] = []
        self.dead: list[DeadLetter] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.unparsed = 0

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.thread.start()
        self.call(self._start())

    async def _start(self) -> None:
        await ensure_topics(self.settings, self.topics.all())
        self.stop = asyncio.Event()
        self.tasks = [
            asyncio.create_task(load_service(n).run(self.settings, self.stop), name=n)
            for n in self.services
        ]
        self.producer = make_producer(self.settings)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            self.topics.valid_readings,
            self.topics.dead_letter,
            **client_options(self.settings),
            group_id=self.settings.group_id("fuzz-collector"),
            auto_offset_reset="earliest",
            session_timeout_ms=self.settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=500,
            max_partition_fetch_bytes=4 << 20,
        )
        await self.consumer.start()
        self.tasks.append(asyncio.create_task(self._collect(), name="collector"))

    async def _collect(self) -> None:
        while not self.stop.is_set():
            polled = await self.consumer.getmany(timeout_ms=200)
            for records in polled.values():
                for r in records:
                    if r.topic == self.topics.dead_letter:
                        self.dead.append(DeadLetter.model_validate_json(r.value))
                        continue
                    try:  # a test may put hostile bytes on the valid topic (for drift)
                        self.valid.append(ValidReading.model_validate_json(r.value or b""))
                    except ValidationError:
                        self.unparsed += 1

    def publish(self, cases: list[Case]) -> list[Message]:
        return self.call(self._publish(cases))

    async def _publish(self, cases: list[Case]) -> list[Message]:
        topic = self.topics.raw_readings
        futures = [await self.producer.send(topic, c.value, key=c.key) for c in cases]
        sent = await asyncio.gather(*futures)
        return [
            Message(topic, s.partition, s.offset, c.key, c.value)
            for s, c in zip(sent, cases, strict=True)
        ]

    def crashed(self) -> list[str]:
        return [
            f"{t.get_name()}: {t.exception()!r}" if not t.cancelled() else t.get_name()
            for t in self.tasks
            if t.done()
        ]

    def close(self) -> None:
        async def _close() -> None:
            self.stop.set()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self.consumer.stop()
            await self.producer.stop()

        try:
            self.call(_close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture
def pipeline(make_settings, database_url) -> Iterator[tuple[Pipeline, RawStore]]:
    settings = make_settings(database_url=database_url, batch_max_records=500)
    running = Pipeline(settings)
    running.start()
    store = RawStore.from_url(database_url)
    try:
        yield running, store
    finally:
        running.close()
        store.engine.dispose()


def wait_until(condition: Any, timeout: float, what: str, pipeline: Pipeline) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert not pipeline.crashed(), f"a service stopped: {pipeline.crashed()}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def stored_ids(store: RawStore) -> set[str]:
    """The raw store's message ids; none while ingest, starting, is still migrating the schema
    (MariaDB's DDL is not transactional: a table can be there before a later revision's
    columns)."""
    try:
        return store.message_ids()
    except (OperationalError, ProgrammingError):
        return set()


def payload_of(letter: DeadLetter) -> bytes:
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload)
    return letter.payload.encode()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # examples depend on the wall clock and fresh ids: replaying means little
    phases=[Phase.generate],  # no shrinking: a round trip takes seconds; assertions name the case
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the services live across the examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_every_generated_message_is_stored_and_lands_on_exactly_one_topic(
    pipeline: tuple[Pipeline, RawStore], data: st.DataObject
) -> None:
    running, store = pipeline
    settings = running.settings
    run = uuid.uuid4().hex[:8]  # this example's sensors: valid readings are its own
    cases = data.draw(
        message_cases(
            load_profile(settings.profile_path),
            datetime.now(UTC),
            run,
            max_bytes=settings.max_message_bytes,
            min_size=MIN_MESSAGES,
            max_size=MAX_MESSAGES,
            keys_checked=True,
        ),
        label="messages",
    )
    sent = running.publish(cases)
    places = {(m.partition, m.offset): i for i, m in enumerate(sent)}
    ours = f"-{run}-"

    def dead_letters() -> list[DeadLetter]:
        return [d for d in list(running.dead) if (d.source.partition, d.source.offset) in places]

    def valid_readings() -> list[ValidReading]:
        return [v for v in list(running.valid) if ours in v.sensor_id]

    wait_until(
        lambda: len(dead_letters()) + len(valid_readings()) >= len(cases),
        90,
        f"validator outputs of {len(cases)} messages",
        running,
    )
    expected_ids = {key_columns(m).message_id for m in sent}
    wait_until(lambda: expected_ids <= stored_ids(store), 90, "raw store rows", running)
    time.sleep(0.5)  # anything more (a second outcome of some message) would arrive by now
    assert not running.crashed()

    dead = dead_letters()
    valid = valid_readings()
    # One outcome per message: a dead letter for its place, or a valid reading.
    assert len(dead) + len(valid) == len(cases)
    dead_by_place = {(d.source.partition, d.source.offset): d for d in dead}
    assert len(dead_by_place) == len(dead), "a message dead-lettered twice"
    for place, letter in dead_by_place.items():
        case = cases[places[place]]
        assert letter.stage == "validator"
        assert letter.source.topic == running.topics.raw_readings
        assert letter.reasons and all(r.check and r.detail for r in letter.reasons), letter
        assert "internal_error" not in {r.check for r in letter.reasons}, letter
        sent = case.value or b""
        assert letter.payload_bytes == len(sent)
        assert letter.payload_truncated == (len(sent) > PAYLOAD_LIMIT)
        assert payload_of(letter) == sent[:PAYLOAD_LIMIT]
        if case.group is not None:  # a valid reading or a copy: the one not accepted
            assert {r.check for r in letter.reasons} == {"not_duplicate"}, (case, letter)
        else:
            assert case.valid is not True, (case, letter)
            if case.checks:
                assert case.checks & {r.check for r in letter.reasons}, (case, letter)
    for place, i in places.items():
        if cases[i].valid is False:
            assert place in dead_by_place, cases[i]

    # Every valid reading (of each group of resent copies: one) on the valid topic once.
    groups = {c.group for c in cases if c.group is not None}
    valid_ids = Counter(v.reading_id for v in valid)
    assert {g: valid_ids[g] for g in groups} == dict.fromkeys(groups, 1)
    assert all(n == 1 for n in valid_ids.values())

    # Every message in the raw store, each distinct message once.
    assert expected_ids <= store.message_ids()
    totals["messages"] += len(cases)
    totals["examples"] += 1
    totals.update(c.kind for c in cases)


def test_zz_report_counts() -> None:
    print(f"\nstream fuzz: {dict(totals)}")


def test_a_message_far_beyond_the_limit_is_dead_lettered(make_settings, tmp_path) -> None:
    """Kafka takes messages up to 1 MB, the validator 64 KiB: what lies between is dead-lettered
    too, also when its dead letter (JSON escapes, base64) would outgrow the message."""
    database_url = f"sqlite:///{tmp_path / 'raw.db'}"
    running = Pipeline(make_settings(database_url=database_url))
    running.start()
    try:
        big = [
            Case("too_large", b"pump-big", b"\x01" * 200_000, False, frozenset({"too_large"})),
            Case("too_large", b"pump-big", b"\xff" * 800_000, False, frozenset({"too_large"})),
            Case("too_large", b"pump-big", b" " * 900_000, False, frozenset({"too_large"})),
        ]
        sent = running.publish(big)
        places = {(m.partition, m.offset) for m in sent}
        wait_until(
            lambda: places <= {(d.source.partition, d.source.offset) for d in running.dead},
            60,
            "dead letters of the oversized messages",
            running,
        )
        for letter in running.dead:
            assert {r.check for r in letter.reasons} == {"too_large"}, letter.reasons
    finally:
        running.close()
