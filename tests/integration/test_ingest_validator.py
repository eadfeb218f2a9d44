"""ingest + validator on the real broker and real databases, fed with SKAB replays that have
malformed, out-of-range and duplicate messages mixed in."""

from __future__ import annotations

import pytest

from driftline.core.profile import load_profile
from driftline.core.records import DeadLetter, ValidReading
from driftline.core.topics import Topics
from driftline.simulate.plans import make_plan
from driftline.store.raw_store import RawStore, key_columns
from driftline.streaming.kafka import make_producer
from driftline.streaming.messages import Message
from tests.streams import publish, read_topic, rows_stored, running, wait_for

pytestmark = pytest.mark.integration


async def test_every_message_lands_once_and_invalid_ones_are_dead_lettered(
    make_settings, database_url, skab_dir
):
    settings = make_settings(database_url=database_url)
    topics = Topics(settings.topic_prefix)
    profile = load_profile(settings.profile_path)
    files = [skab_dir / "valve1" / f"{i}.csv" for i in range(3)]
    plan = make_plan(
        profile.features,
        sensors=3,
        replay=files,
        malformed_rate=0.03,
        seed=7,
    )
    store = RawStore.from_url(database_url)

    async with running(settings, ["ingest", "validator"]):
        report = await publish(settings, plan)
        # A sensor that sends some readings twice: the copies are duplicates, not new rows.
        originals = [m for m in report.messages if m.malformed is None][:40]
        producer = make_producer(settings)
        await producer.start()
        try:
            resent = [
                await producer.send(topics.raw_readings, m.value, key=m.key) for m in originals
            ]
            resent_places = (
                [(await f).partition for f in resent],
                [(await f).offset for f in resent],
            )
        finally:
            await producer.stop()

        sent = [Message(topics.raw_readings, *m.place, m.key, m.value) for m in report.messages] + [
            Message(topics.raw_readings, p, o, m.key, m.value)
            for p, o, m in zip(*resent_places, originals, strict=True)
        ]
        expected_ids = {key_columns(m).message_id for m in sent}
        malformed_places = {(m.place) for m in report.messages if m.malformed is not None} | set(
            zip(*resent_places, strict=True)
        )
        expected_valid = len(report.messages) - sum(report.malformed.values())

        await wait_for(lambda: rows_stored(store) >= len(expected_ids), 90, "rows in the raw store")

        async def outputs_complete() -> bool:
            valid = await read_topic(settings, topics.valid_readings)
            dead = await read_topic(settings, topics.dead_letter)
            return len(valid) >= expected_valid and len(dead) >= len(malformed_places)

        await wait_for(outputs_complete, 90, "validator outputs")

    # Raw store: every message exactly once (redelivered or resent ones included).
    assert store.count() == len(expected_ids)
    assert store.message_ids() == expected_ids

    # Valid topic: each well-formed reading once; the dead-letter topic: exactly the bad ones.
    valid = [
        ValidReading.model_validate_json(m.value)
        for m in await read_topic(settings, topics.valid_readings)
    ]
    dead = [
        DeadLetter.model_validate_json(m.value)
        for m in await read_topic(settings, topics.dead_letter)
    ]
    assert len(valid) == expected_valid
    assert len({v.reading_id for v in valid}) == expected_valid
    assert {(d.source.partition, d.source.offset) for d in dead} == malformed_places
    assert len(dead) == len(malformed_places)
    assert all(d.reasons and all(r.detail for r in d.reasons) for d in dead)

    # The reasons name what was wrong.
    checks_by_kind: dict[str, set[str]] = {}
    by_place = {(d.source.partition, d.source.offset): d for d in dead}
    for m in report.messages:
        if m.malformed is not None:
            checks_by_kind.setdefault(m.malformed, set()).update(
                r.check for r in by_place[m.place].reasons
            )
    assert "not_json" in checks_by_kind["not-json"]
    assert "not_object" in checks_by_kind["not-object"]
    assert "missing_field" in checks_by_kind["missing-field"]
    assert "wrong_type" in checks_by_kind["wrong-type"]
    assert checks_by_kind["nan"] <= {"not_nullable", "finite"}
    assert "in_range" in checks_by_kind["out-of-range"]
    assert "not_in_future" in checks_by_kind["future-ts"]
    assert "known_sensor" in checks_by_kind["unknown-sensor"]
    dup_checks = {r.check for p in zip(*resent_places, strict=True) for r in by_place[p].reasons}
    assert dup_checks == {"not_duplicate"}
    store.engine.dispose()
