"""A new sensor's baseline, completed by the drift service from the readings on the valid topic
(real broker, real validator and drift service), is the one serving judges the sensor by, and
the one serving's own completion gives way to (first stored wins)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.anomaly.automl import defaults
from driftline.anomaly.baseline_store import BaselineStore
from driftline.anomaly.bundle import PENDING, READY, ModelBundle, OnlineScorer
from driftline.anomaly.model import AnomalyModel
from driftline.anomaly.recordings import recording_from_frame
from driftline.core.profile import load_profile
from driftline.core.records import DriftEvent, ValidReading
from driftline.core.topics import Topics
from driftline.serving.champion import _keep
from driftline.simulate.plans import make_plan, sensor_ids
from driftline.simulate.signals import SyntheticPump
from tests.streams import publish, read_topic, running, wait_for

pytestmark = pytest.mark.integration
COUNT = 120


def serving_bundle(features: list[str]) -> ModelBundle:
    frames = [pd.DataFrame([v for _, v, _ in SyntheticPump(seed=s).rows(600)]) for s in (1, 2)]
    recordings = [
        recording_from_frame(f"train-{i}", f, features, COUNT) for i, f in enumerate(frames)
    ]
    spec = defaults("pca-t2q", tuple(features)).model_copy(update={"smooth": 3})
    return ModelBundle(AnomalyModel.fit(spec, recordings), {}, tuple(features))


async def test_the_drift_services_baseline_is_the_one_serving_uses(make_settings, tmp_path):
    reference = tmp_path / "reference.parquet"
    pd.DataFrame([v for _, v, _ in SyntheticPump(seed=3).rows(2000)]).astype(np.float64).to_parquet(
        reference
    )
    settings = make_settings(
        reference_path=reference, drift_basis="baseline", baseline_readings=COUNT
    )
    features = load_profile(settings.profile_path).features
    store = BaselineStore(settings.data_dir / "baselines")
    sensor = sensor_ids(1)[0]
    topics = Topics(settings.topic_prefix)

    async def valid() -> list[ValidReading]:
        return [
            ValidReading.model_validate_json(m.value)
            for m in await read_topic(settings, topics.valid_readings)
        ]

    async def ready_event() -> bool:
        events = [
            DriftEvent.model_validate_json(m.value)
            for m in await read_topic(settings, topics.drift_events)
        ]
        return any(e.baseline == READY for e in events)

    async with running(settings, ["validator", "drift"]):
        await publish(settings, make_plan(features, sensors=1, count=COUNT + 40, seed=11))
        await wait_for(lambda: _stored(store, sensor), 60, "the drift service's baseline")
        await publish(settings, make_plan(features, sensors=1, count=600, seed=12))
        await wait_for(ready_event, 90, "a window judged against the completed baseline")
    drifts = store.get(sensor)
    assert drifts is not None and drifts.count == COUNT and drifts.measurements == tuple(features)
    readings = await valid()  # in arrival order (one sensor: one partition)
    # Its baseline is the sensor's first COUNT valid readings to arrive, in ts order.
    first = sorted(readings[:COUNT], key=lambda r: r.ts)
    np.testing.assert_array_equal(drifts.values(), [[r.values[f] for f in features] for r in first])
    events = [
        DriftEvent.model_validate_json(m.value)
        for m in await read_topic(settings, topics.drift_events)
    ]
    assert {e.baseline_version for e in events if e.baseline == READY} == {drifts.version}

    bundle = serving_bundle(features)
    # Serving that looks the sensor up in the store judges it by the drift service's baseline.
    looking = OnlineScorer(bundle, lookup=store.get, baseline_readings=COUNT)
    scored = looking.score(readings[-50:])
    assert {(s.baseline, s.baseline_version) for s in scored} == {(READY, drifts.version)}
    # Serving that completes its own (here from other readings: it missed the first ten)
    # gives way to the one stored first, and judges by it from then on.
    completing = OnlineScorer(
        bundle, baseline_readings=COUNT, on_baseline=lambda b: _keep(store, b)
    )
    served = []
    for i in range(10, len(readings), 25):
        served += completing.score(readings[i : i + 25])
    assert served[0].baseline == PENDING
    assert {s.baseline_version for s in served if s.baseline == READY} == {drifts.version}
    assert served[-1].baseline == READY
    assert store.get(sensor) == drifts


async def _stored(store: BaselineStore, sensor: str) -> bool:
    return store.get(sensor) is not None
