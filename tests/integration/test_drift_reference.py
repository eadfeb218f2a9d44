"""The drift service follows the model in production: a promotion swaps its reference, a
restarted worker starts with the latest promotion, a broken promotion is dead-lettered; on the
baseline basis, a sensor is judged relative to its own baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.baseline import from_first_readings
from driftline.anomaly.baseline_store import BaselineStore
from driftline.core.profile import load_profile
from driftline.core.records import DeadLetter, DriftEvent, ModelPromoted
from driftline.core.topics import Topics
from driftline.drift.reference import load_reference
from driftline.simulate.plans import make_plan, sensor_ids
from driftline.simulate.signals import SyntheticPump
from driftline.streaming.kafka import make_producer
from tests.streams import publish, read_topic, running, wait_for

pytestmark = pytest.mark.integration


def write_reference(path, seed: int, shift: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame([v for _, v, _ in SyntheticPump(seed=seed).rows(4000)])
    if shift:
        for column in ("Current", "Pressure", "Voltage", "Volume Flow RateRMS"):
            frame[column] += shift * frame[column].std()
    frame.astype(np.float64).to_parquet(path)


async def send(settings, *records) -> None:  # type: ignore[no-untyped-def]
    producer = make_producer(settings)
    await producer.start()
    try:
        topic = Topics(settings.topic_prefix).model_promotions
        for record in records:
            await (await producer.send(topic, record))
    finally:
        await producer.stop()


async def drift_events(settings) -> list[DriftEvent]:  # type: ignore[no-untyped-def]
    topic = Topics(settings.topic_prefix).drift_events
    return [DriftEvent.model_validate_json(m.value) for m in await read_topic(settings, topic)]


async def test_promotion_swaps_the_reference_and_survives_a_restart(make_settings, tmp_path):
    baseline, promoted = tmp_path / "baseline.parquet", tmp_path / "promoted.parquet"
    write_reference(baseline, seed=1)
    write_reference(promoted, seed=2, shift=4.0)  # a model trained on very different data
    # Raw levels first: the promoted model's data is far from the pump's.
    settings = make_settings(reference_path=baseline, drift_basis="raw")
    features = load_profile(settings.profile_path).features
    baseline_id = load_reference(baseline, features).reference_id
    promoted_id = load_reference(promoted, features).reference_id
    topics = Topics(settings.topic_prefix)

    def normal_readings(seed: int):  # type: ignore[no-untyped-def]
        return make_plan(
            features,
            sensors=1,
            count=900,
            seed=seed,
        )

    async with running(settings, ["validator", "drift"]):
        await publish(settings, normal_readings(5))
        await wait_for(lambda: _count(drift_events(settings), 3), 60, "windows on the baseline")
        bad = ModelPromoted(model_name="m", model_version="9", reference_uri="/nonexistent.parquet")
        good = ModelPromoted(model_name="m", model_version="2", reference_uri=str(promoted))
        await send(settings, b"{not json", bad.to_bytes(), good.to_bytes())
        await wait_for(
            lambda: _count(read_topic(settings, topics.dead_letter), 2),
            60,
            "dead-lettered promotions",
        )
        await publish(settings, normal_readings(6))
        await wait_for(lambda: _count(drift_events(settings), 6), 60, "windows after the promotion")

    events = await drift_events(settings)
    assert [e.reference_id for e in events[:3]] == [baseline_id] * 3
    assert not any(e.drifted for e in events[:3])
    assert [e.reference_id for e in events[3:]] == [promoted_id] * 3
    assert all(e.drifted for e in events[3:]), "normal data against the shifted model's data"
    letters = [
        DeadLetter.model_validate_json(m.value)
        for m in await read_topic(settings, topics.dead_letter)
    ]
    assert {r.check for d in letters for r in d.reasons} == {"bad_promotion"}
    assert all(d.stage == "drift" for d in letters)

    # A drift worker started later begins with the promoted reference, not the baseline. On
    # the baseline basis, the pump (its baseline in the store) is compared in units of its own
    # normal with the promoted data in units of its own: the level shift is no drift there.
    frame = pd.DataFrame([v for _, v, _ in SyntheticPump(seed=7000).rows(400)])
    pump = from_first_readings(frame, sensor_ids(1)[0], features, 400)
    assert pump is not None
    BaselineStore(settings.data_dir / "baselines").save(pump)
    settings = settings.model_copy(update={"drift_basis": "baseline"})
    async with running(settings, ["validator", "drift"]):
        await publish(settings, normal_readings(7))
        await wait_for(lambda: _count(drift_events(settings), 9), 60, "windows after restart")
    restarted = (await drift_events(settings))[6:]
    assert {e.reference_id for e in restarted} == {promoted_id}
    assert {(e.basis, e.baseline, e.baseline_version) for e in restarted} == {
        ("baseline", "ready", pump.version)
    }
    assert not any(e.drifted for e in restarted)


async def _count(awaitable, n: int) -> bool:  # type: ignore[no-untyped-def]
    return len(await awaitable) >= n
