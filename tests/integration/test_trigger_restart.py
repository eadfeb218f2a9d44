"""A restarted retrain-trigger, on the real broker and databases: it goes on counting a
sensor's drifted windows where it stopped, and resumes a pending relaunch under the same
request id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from driftline.core.records import DriftEvent, RetrainRequest
from driftline.core.topics import Topics
from driftline.store.raw_store import RawStore
from driftline.store.tables import retrain_runs
from driftline.streaming.kafka import ensure_topics, make_producer, publish_all
from driftline.trigger.ledger import RunLedger
from driftline.trigger.relaunch import relaunch_id
from tests.integration.test_drift_trigger import decisions
from tests.streams import read_topic, running, wait_for

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def drifted(sensor: str, n: int) -> DriftEvent:
    start = T0 + timedelta(minutes=n)
    return DriftEvent(
        sensor_id=sensor,
        window_start=start,
        window_end=start + timedelta(seconds=59),
        window_size=60,
        reference_id="ref-1",
        features=[],
        drift_share=1.0,
        drifted=True,
        closed_by="count",
    )


async def send(settings, events: list[DriftEvent]) -> None:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    producer = make_producer(settings)
    await producer.start()
    try:
        await publish_all(
            producer, [(topics.drift_events, e.sensor_id.encode(), e.to_bytes()) for e in events]
        )
    finally:
        await producer.stop()


async def requests(settings) -> list[RetrainRequest]:
    topic = Topics(settings.topic_prefix).retrain_requests
    return [RetrainRequest.model_validate_json(m.value) for m in await read_topic(settings, topic)]


async def test_a_restart_keeps_the_streaks(make_settings, database_url):
    settings = make_settings(database_url=database_url, trigger_consecutive_windows=3)
    store = RawStore.from_url(database_url)
    store.create_tables()  # before the trigger does: the test reads the table from the start
    store.engine.dispose()
    first = [drifted("pump-001", n) for n in range(2)] + [drifted("pump-002", 0)]
    async with running(settings, ["retrain-trigger"]):
        await send(settings, first)
        await wait_for(lambda: len(decisions(database_url)) == 3, 60, "three decisions")
    assert [d["streak"] for d in decisions(database_url)] == [1, 2, 1]

    third = drifted("pump-001", 2)
    async with running(settings, ["retrain-trigger"]):  # restarted
        await send(settings, [third])
        await wait_for(lambda: len(decisions(database_url)) == 4, 60, "the fourth decision")
    fired = decisions(database_url)[-1]
    assert fired["fired"], fired["reason"]
    (request,) = await requests(settings)
    assert request.drift_event_ids == [e.event_id for e in first[:2]] + [third.event_id]
    assert (request.data_start, request.data_end) == (first[0].window_start, third.window_end)
    assert request.sensors == ["pump-001"] and fired["fired_sensors"] == '["pump-001"]'


def failed_run(database_url: str) -> tuple[RetrainRequest, RawStore]:
    """A run that failed before the trigger (re)starts."""
    failed = RetrainRequest(
        reason="drift",
        sensors=["pump-001"],
        drift_event_ids=["ev-1"],
        data_start=T0,
        data_end=T0 + timedelta(minutes=3),
    )
    store = RawStore.from_url(database_url)
    store.create_tables()
    RunLedger(store.engine).record(failed, "recording", "failed")
    return failed, store


async def test_a_restart_resumes_a_pending_relaunch_with_its_request_id(
    make_settings, database_url
):
    """The trigger stopped after the run failed and before its relaunch was launched."""
    settings = make_settings(
        database_url=database_url, trigger_retry_attempts=2, trigger_retry_backoff_seconds=1
    )
    failed, store = failed_run(database_url)

    def runs() -> list[str]:
        with store.engine.connect() as conn:
            return list(conn.execute(select(retrain_runs.c.request_id)).scalars())

    try:
        async with running(settings, ["retrain-trigger"]):
            await wait_for(lambda: len(runs()) == 2, 60, "the relaunch recorded")
        (relaunched,) = await requests(settings)
        assert relaunched.request_id == relaunch_id(failed.request_id, 1)
        assert relaunched.reason == f"relaunch 1 of {failed.request_id}: drift"
        assert sorted(runs()) == sorted([failed.request_id, relaunched.request_id])
    finally:
        store.engine.dispose()


async def test_a_restart_does_not_relaunch_a_run_that_failed_long_ago(make_settings, database_url):
    """Hazard: a failed run was relaunched at a restart however old its failure; one older
    than DRIFTLINE_TRIGGER_RETRY_MAX_AGE_SECONDS gets a decision saying why it is not."""
    settings = make_settings(
        database_url=database_url,
        trigger_retry_attempts=2,
        trigger_retry_backoff_seconds=1,
        trigger_retry_max_age_seconds=3600,
    )
    failed, store = failed_run(database_url)
    two_hours_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=2)
    with store.engine.begin() as conn:
        conn.execute(update(retrain_runs).values(finished_at=two_hours_ago))

    def held() -> list[dict]:
        return [d for d in decisions(database_url) if d["sensor_id"].startswith("relaunch:")]

    try:
        async with running(settings, ["retrain-trigger"]):
            await wait_for(lambda: len(held()) == 1, 60, "the decision not to relaunch")
        (decision,) = held()
        assert not decision["fired"] and "not relaunching" in decision["reason"]
        assert decision["sensor_id"] == f"relaunch:{failed.request_id}"
        assert await requests(settings) == []
        with store.engine.connect() as conn:
            assert list(conn.execute(select(retrain_runs.c.request_id)).scalars()) == [
                failed.request_id
            ]
    finally:
        store.engine.dispose()
