"""The retrain-trigger, when it fires, runs the real pipeline (KFP local runner) on the drift
episode's time range, and records how the run ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from driftline.core.records import DriftEvent, FeatureDrift
from driftline.core.topics import Topics
from driftline.store.raw_store import RawStore
from driftline.store.tables import promotion_decisions, retrain_runs
from driftline.streaming.kafka import make_producer
from driftline.trigger.ledger import FINISHED
from tests.skab import land_skab
from tests.streams import running, wait_for

pytestmark = pytest.mark.integration


def drift_event(sensor: str, start: datetime, end: datetime) -> DriftEvent:
    return DriftEvent(
        sensor_id=sensor,
        window_start=start,
        window_end=end,
        window_size=300,
        reference_id="ref-test",
        features=[
            FeatureDrift(
                feature="Current",
                stattest="wasserstein",
                statistic=3.0,
                threshold=2.0,
                drifted=True,
            )
        ],
        drift_share=1.0,
        drifted=True,
        closed_by="count",
    )


def runs(store: RawStore) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(retrain_runs))]


@pytest.mark.timeout(900)
async def test_fired_trigger_runs_the_pipeline_on_the_episode(make_settings, mariadb_url, skab_dir):
    settings = make_settings(database_url=mariadb_url, retrain_launcher="kfp-local", tune_samples=2)
    store = RawStore.from_url(mariadb_url)
    store.create_tables()
    valve = sorted((skab_dir / "valve1").glob("*.csv"), key=lambda p: int(p.stem))
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    end = land_skab(store, valve[:12], t0, "pump-001")
    # A drift episode over the last two thirds of the data: the challenger trains on what
    # came before the episode's middle and is judged on the rest.
    episode = t0 + (end - t0) / 3
    step = (end - episode) / 3
    events = [
        drift_event("pump-001", episode + i * step, episode + (i + 1) * step) for i in range(3)
    ]

    async with running(settings, ["retrain-trigger"]):
        producer = make_producer(settings)
        await producer.start()
        topic = Topics(settings.topic_prefix).drift_events
        for e in events:
            await (await producer.send(topic, e.to_bytes(), key=b"pump-001"))
        await producer.stop()
        await wait_for(lambda: runs(store), 60, "the run to be launched")
        await wait_for(
            lambda: runs(store)[0]["status"] in FINISHED, 600, "the pipeline run to finish"
        )

    (run,) = runs(store)
    assert run["launcher"] == "kfp-local"
    assert run["status"] == "succeeded", run["detail"]
    with store.engine.connect() as conn:
        decided = [dict(r._mapping) for r in conn.execute(select(promotion_decisions))]
    assert len(decided) == 1 and decided[0]["promoted"]  # the first model: nothing to beat
    assert decided[0]["request_id"] == run["request_id"]
    store.engine.dispose()
