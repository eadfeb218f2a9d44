"""Services killed with SIGKILL mid-stream and restarted lose nothing and duplicate nothing."""

from __future__ import annotations

import asyncio

import pytest

from driftline.core.profile import load_profile
from driftline.core.records import DeadLetter, ValidReading
from driftline.core.topics import Topics
from driftline.simulate.plans import make_plan
from driftline.store.raw_store import RawStore, key_columns
from driftline.streaming.messages import Message
from tests.processes import ServiceProcess
from tests.streams import publish, read_topic, rows_stored, wait_for

pytestmark = pytest.mark.integration


def plan_for(settings, count: int):  # type: ignore[no-untyped-def]
    profile = load_profile(settings.profile_path)
    return make_plan(
        profile.features,
        sensors=4,
        count=count,
        malformed_rate=0.02,
        seed=11,
    )


async def test_ingest_killed_twice_mid_stream(make_settings, database_url, tmp_path):
    settings = make_settings(database_url=database_url, batch_max_records=500)
    topics = Topics(settings.topic_prefix)
    store = RawStore.from_url(database_url)
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log")
    ingest.start()
    try:
        sending = asyncio.create_task(publish(settings, plan_for(settings, 6000)))
        for threshold in (3000, 12000):
            await wait_for(lambda t=threshold: rows_stored(store) >= t, 120, f"{threshold} rows")
            ingest.kill()  # mid-batch: some rows committed, their offsets maybe not
            ingest.start()
        report = await sending
        expected = {
            key_columns(Message(topics.raw_readings, *m.place, m.key, m.value)).message_id
            for m in report.messages
        }
        await wait_for(lambda: rows_stored(store) >= len(expected), 120, "every row")
        await asyncio.sleep(2)  # anything still redelivered would show as extra rows now
    finally:
        ingest.stop()
    assert ingest.kills == 2
    # Every distinct message once (the plan's exact resends are one message each).
    assert store.count() == len(expected) <= report.sent
    assert store.message_ids() == expected
    store.engine.dispose()


async def test_validator_killed_mid_stream(make_settings, tmp_path):
    settings = make_settings(batch_max_records=500)
    topics = Topics(settings.topic_prefix)
    validator = ServiceProcess("validator", settings, tmp_path / "validator.log")
    validator.start()
    try:
        sending = asyncio.create_task(publish(settings, plan_for(settings, 5000)))

        async def valid_count() -> int:
            return len(await read_topic(settings, topics.valid_readings))

        await wait_for(lambda: _at_least(valid_count, 4000), 120, "4000 valid readings")
        validator.kill()
        validator.start()
        report = await sending
        good = [m for m in report.messages if m.malformed is None]
        bad_places = {m.place for m in report.messages if m.malformed is not None}
        await wait_for(lambda: _at_least(valid_count, len(good)), 120, "every valid reading")
    finally:
        validator.stop()

    valid = [
        ValidReading.model_validate_json(m.value)
        for m in await read_topic(settings, topics.valid_readings)
    ]
    dead = [
        DeadLetter.model_validate_json(m.value)
        for m in await read_topic(settings, topics.dead_letter)
    ]
    expected_ids = {
        key_columns(Message(topics.raw_readings, *m.place, m.key, m.value)).reading_id for m in good
    }
    # At least once: every valid reading arrived, some maybe twice; never a bad one.
    assert {v.reading_id for v in valid} == expected_ids
    assert {(d.source.partition, d.source.offset) for d in dead} == bad_places
    # A redelivered message is validated again after the restart: never called a duplicate.
    assert not any(r.check == "not_duplicate" for d in dead for r in d.reasons)
    print(f"\nvalidator restart: {len(valid) - len(expected_ids)} readings delivered twice")


async def _at_least(count, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count() >= n
