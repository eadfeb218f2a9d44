"""The consumer loop's error policy on real services: a record the database refuses is
dead-lettered and the stream moves on; a database refusing everything while it answers its
checks is a stall (not ready, metric, log), not a stream of dead letters; the SQLite file
removed or replaced under ingest is detected, not ready, and nothing is acknowledged."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from driftline.core.records import DeadLetter
from driftline.core.topics import Topics
from driftline.store.raw_store import RawStore, message_id
from driftline.streaming.error_policy import MAX_POISON_STREAK
from tests.integration.test_outages import (
    ServiceProcess,
    _equals,
    committed,
    message_ids,
    readings,
)
from tests.processes import port_block
from tests.streams import publish, read_topic, rows_stored, wait_for, wait_for_count

pytestmark = pytest.mark.integration


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for s in started:
        s.stop()


REFUSE_POISON = """
CREATE TRIGGER refuse_poison BEFORE INSERT ON raw_readings FOR EACH ROW
BEGIN
  IF NEW.sensor_id = 'pump-poison' THEN
    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused: poison';
  END IF;
END
"""
REFUSE_ALL = """
CREATE TRIGGER refuse_all BEFORE INSERT ON raw_readings FOR EACH ROW
  SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused: everything'
"""


async def send_raw(settings, items: list[tuple[bytes | None, bytes]]) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    from driftline.streaming.kafka import make_producer

    producer = make_producer(settings)
    await producer.start()
    try:
        topic = Topics(settings.topic_prefix).raw_readings
        places = []
        for key, value in items:
            meta = await producer.send_and_wait(topic, value, key=key)
            places.append((meta.partition, meta.offset))
        return places
    finally:
        await producer.stop()


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


async def ingest_letters(settings) -> list[DeadLetter]:  # type: ignore[no-untyped-def]
    topic = Topics(settings.topic_prefix).dead_letter
    letters = [DeadLetter.model_validate_json(m.value) for m in await read_topic(settings, topic)]
    return [d for d in letters if d.stage == "ingest"]


@pytest.mark.timeout(600)
async def test_a_refused_record_is_dead_lettered_and_a_refusing_database_is_a_stall(
    make_settings, mariadb_url, tmp_path, services
):
    settings = make_settings(
        database_url=mariadb_url,
        metrics_port=port_block(1),
        health_check_seconds=1,
        stall_retries=4,
    )
    store = RawStore.from_url(mariadb_url)
    store.create_tables()
    with store.engine.begin() as conn:
        conn.execute(sa.text(REFUSE_POISON))
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log").start()
    services.append(ingest)
    await ingest.wait_ready(True, 90, "ingest ready")

    # One record the database refuses, among good ones: dead-lettered, the rest stored.
    poison = orjson.dumps({"sensor_id": "pump-poison", "ts": "2024-01-01T00:00:00Z"})
    before = await publish(settings, readings(settings, 150, seed=21))
    ((partition, offset),) = await send_raw(settings, [(b"pump-poison", poison)])
    after = await publish(settings, readings(settings, 150, seed=22))
    good = message_ids(settings, before) | message_ids(settings, after)
    await wait_for_count(lambda: rows_stored(store), len(good), "the good messages stored")
    assert store.message_ids() == good
    assert message_id(b"pump-poison", poison) not in store.message_ids()
    # The poison's letter is sent once its batch's good rows are stored, so it may trail them.
    await wait_for(lambda: ingest_letters(settings), 60, "the poison dead-lettered")
    (letter,) = await ingest_letters(settings)
    assert (letter.source.partition, letter.source.offset) == (partition, offset)
    (reason,) = letter.reasons
    assert reason.check == "internal_error" and "refused: poison" in reason.detail
    assert await ingest.metric("driftline_poison_records_total", service="ingest") == 1
    await ingest.wait_ready(True, 30, "ingest ready after the poison")

    # A database that refuses every write but answers SELECT 1: a stall, not dead letters.
    with store.engine.begin() as conn:
        conn.execute(sa.text(REFUSE_ALL))
    topic, group = Topics(settings.topic_prefix).raw_readings, settings.group_id("ingest")
    acknowledged = await committed(settings, group, topic)
    stuck = await publish(settings, readings(settings, 60, seed=23))
    await ingest.wait_ready(False, 60, "ingest stalled")
    assert "stalled" in (await ingest.reasons())["stream"]
    assert await ingest.metric("driftline_stream_stalled", service="ingest") == 1
    assert "database" not in await ingest.reasons()  # it answers: the stream is what is wrong
    assert "ingest stalled: batch at" in ingest.log_text()
    await asyncio.sleep(2)
    letters = await ingest_letters(settings)
    assert len(letters) - 1 <= MAX_POISON_STREAK
    assert await committed(settings, group, topic) <= acknowledged + MAX_POISON_STREAK

    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER refuse_all"))
    await ingest.wait_ready(True, 60, "ingest ready once writes go through")
    assert await ingest.metric("driftline_stream_stalled", service="ingest") == 0
    expected = good | message_ids(settings, stuck)

    async def stored_or_dead_lettered() -> int:
        # A record being isolated when the stall began may still be dead-lettered after the
        # letters above were read (up to MAX_POISON_STREAK in all): count them as they come.
        return len((store.message_ids() | await stuck_letter_ids()) & expected)

    async def stuck_letter_ids() -> set[str]:
        letters = (await ingest_letters(settings))[1:]  # the first is the poison's
        assert len(letters) <= MAX_POISON_STREAK
        return {message_id(_bytes(d.key), d.payload.encode()) for d in letters}

    # Progress-based: the stalled batch is retried with backoff and a busy machine is slow, so
    # fail only once nothing more has been accounted for in 90 s.
    await wait_for_count(
        stored_or_dead_lettered, len(expected), "the rest stored or dead-lettered", stall=90
    )
    stored, dead = store.message_ids(), await stuck_letter_ids()
    assert expected - stored == dead  # each message stored or dead-lettered, never both
    assert "Traceback" not in ingest.log_text()
    store.engine.dispose()


@pytest.mark.timeout(600)
@pytest.mark.parametrize("how", ["removed", "replaced"])
async def test_the_sqlite_file_removed_or_replaced_under_ingest(
    make_settings, tmp_path: Path, services, how: str
):
    path = tmp_path / "raw.db"
    settings = make_settings(
        database_url=f"sqlite:///{path}", metrics_port=port_block(1), health_check_seconds=1
    )
    topic, group = Topics(settings.topic_prefix).raw_readings, settings.group_id("ingest")
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log").start()
    services.append(ingest)
    await ingest.wait_ready(True, 90, "ingest ready")
    first = await publish(settings, readings(settings, 200, seed=31))
    store = RawStore.from_url(settings.resolved_database_url)
    await wait_for_count(lambda: rows_stored(store), first.sent, "the first readings stored")
    await wait_for(lambda: _equals(committed(settings, group, topic), first.sent), 30, "committed")
    store.engine.dispose()

    if how == "replaced":
        # Made first and moved over the file in one step: a health check between a removal and
        # the replacement would (rightly) see the file removed.
        other = RawStore.from_url(f"sqlite:///{tmp_path / 'other.db'}")
        other.create_tables()
        other.engine.dispose()
    for suffix in ("-wal", "-shm") if how == "replaced" else ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    if how == "replaced":
        os.replace(tmp_path / "other.db", path)
    second = await publish(settings, readings(settings, 200, seed=32))
    await ingest.wait_ready(False, 60, f"ingest not ready with its file {how}")
    assert how in (await ingest.reasons())["database"]
    await wait_for(lambda: ingest.log_text().count(f"was {how}") >= 2, 30, "the failure logged")
    await asyncio.sleep(2)
    assert await committed(settings, group, topic) == first.sent  # nothing acknowledged
    assert ingest.alive()

    # Restarted, it opens the file that is there; what it did not acknowledge comes again.
    ingest.stop()
    ingest.start()
    await ingest.wait_ready(True, 90, "the restarted ingest ready")
    store = RawStore.from_url(settings.resolved_database_url)
    await wait_for_count(lambda: rows_stored(store), second.sent, "the later readings stored")
    assert message_ids(settings, second) <= store.message_ids()
    store.engine.dispose()
