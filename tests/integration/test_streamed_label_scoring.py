"""Labelled readings that streamed past without being served are scored too: the labeler scores
the valid readings with the champion it loads from a real MLflow registry, against the real
broker and MariaDB. Each labelled reading is scored exactly once (a served prediction wins,
whichever arrives first; redelivery adds nothing), and the labelled-performance metric moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mlflow
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from driftline.anomaly.automl import defaults
from driftline.anomaly.baseline import from_first_readings
from driftline.anomaly.bundle import ModelBundle
from driftline.anomaly.model import AnomalyModel
from driftline.anomaly.recordings import Recording
from driftline.anomaly.registered import log_bundle
from driftline.core.profile import load_profile
from driftline.core.records import Prediction, ValidReading
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.labels.annotations import LabelRow
from driftline.labels.candidates import TaskCandidate
from driftline.labels.client import LabelStudioClient
from driftline.labels.intake import LabelIntake, candidate_config, labelled_scores, subscribed
from driftline.labels.store import LabelStore, create_label_tables, labelled_predictions
from driftline.labels.streamed import watched_scorer
from driftline.labels.sync import LabelSync
from driftline.serving.champion import load_version
from driftline.serving.path import ServingPath, tag
from driftline.simulate.signals import SyntheticPump
from driftline.store.raw_store import RawStore
from driftline.streaming.kafka import ensure_topics, make_producer, publish_all
from driftline.training import modeling, registry
from tests.streams import read_topic
from tests.unit.factories import valid_reading

pytestmark = pytest.mark.integration

T0 = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)  # serving takes it
SENSOR = "pump-streamed"
BASELINE = 400  # the sensor's first readings: its baseline in the bundle
STREAMED = 120  # readings after them on the valid-readings topic
SERVED_FIRST = range(0, 40)  # of those, served before the labeler reads the stream
SERVED_LATER = range(100, 110)  # served after it scored them from the stream


def pump_values(seed: int, n: int, features: list[str]) -> np.ndarray:
    rows = list(SyntheticPump(seed=seed, fault_share=0.1).rows(n))
    return np.array([[v[f] for f in features] for _, v, _ in rows], dtype="float64")


def register_champion(settings: Settings, sensor_values: np.ndarray, features: list[str]) -> str:
    """A small pca-t2q bundle (the sensor's baseline inside) registered and made champion."""
    train = []
    for i in range(3):
        rows = list(SyntheticPump(seed=900 + i, fault_share=0.1).rows(1500))
        values = np.array([[v[f] for f in features] for _, v, _ in rows], dtype="float64")
        labels = np.array([label for _, _, label in rows], dtype="int64")
        frame = pd.DataFrame(values[:BASELINE], columns=features)
        baseline = from_first_readings(frame, f"p{i}", features, BASELINE)
        train.append(Recording(f"p{i}", values, baseline, BASELINE, labels))
    model = AnomalyModel.fit(defaults("pca-t2q", tuple(features)), train)
    frame = pd.DataFrame(sensor_values[:BASELINE], columns=features)
    baselines = {SENSOR: from_first_readings(frame, SENSOR, features, BASELINE)}
    bundle = ModelBundle(model, baselines, tuple(features))
    modeling.use_mlflow(settings)
    client = modeling.mlflow_client(settings)
    with mlflow.start_run(experiment_id=modeling.ensure_experiment(settings, client)):
        info = log_bundle(bundle, settings.model_name, ["numpy", "pandas"])
    version = str(info.registered_model_version)
    registry.set_champion(client, settings.model_name, version)
    return version


def valid_readings(values: np.ndarray, features: list[str]) -> list[ValidReading]:
    return [
        valid_reading(
            SENSOR,
            T0 + timedelta(seconds=s),
            s,
            dict(zip(features, map(float, values[BASELINE + s]), strict=True)),
        )
        for s in range(STREAMED)
    ]


def served(settings: Settings, version: str, readings: list[ValidReading]) -> list[Prediction]:
    """What serving answers for ``readings`` (its own scoring path and model instance, as the
    readings arrive at ``/predict``)."""
    model = load_version(settings, settings.model_name, version)
    got: list[Prediction] = []
    path = ServingPath(
        load_profile(settings.profile_path),
        feature_window=settings.feature_window,
        threshold=settings.serving_threshold,
        max_message_bytes=settings.max_message_bytes,
        model=lambda: model,
        publish=got.extend,
    )
    wire = [r.model_dump(mode="json", exclude={"reading_id", "label"}) for r in readings]
    path.score(tag(wire, "request"))
    return got


def label(store: LabelStore, start: int, end: int, verdict: str, annotation: int) -> None:
    """An operator's verdict on a task of the sensor's readings ``start`` to ``end``."""
    t0, t1 = T0 + timedelta(seconds=start), T0 + timedelta(seconds=end)
    candidate = TaskCandidate("anomaly_episode", SENSOR, t0, t1, "test")
    store.add_candidates([candidate], T0)
    row = LabelRow(
        label_id=f"{annotation}-v1-0",
        task_key=candidate.key,
        ls_task_id=annotation,
        annotation_id=annotation,
        annotation_version="v1",
        sensor_id=SENSOR,
        start=t0,
        end=t1,
        label=verdict,
        annotator="op@example.com",
        annotated_at=T0,
        source="pull",
    )
    store.record([row], datetime.now(UTC))


def gauge(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def stored(store: LabelStore) -> dict[str, tuple[str, float]]:
    lp = labelled_predictions
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(lp.c.reading_id, lp.c.source, lp.c.probability).where(
                lp.c.sensor_id == SENSOR
            )
        ).all()
    return {r[0]: (r[1], r[2]) for r in rows}


async def test_streamed_labelled_readings_are_scored_once_beside_served_ones(
    make_settings, mariadb_url: str
) -> None:
    settings = make_settings(database_url=mariadb_url, labels_score_streamed=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    features = load_profile(settings.profile_path).features
    values = pump_values(7, BASELINE + STREAMED, features)
    version = register_champion(settings, values, features)
    readings = valid_readings(values, features)

    raw = RawStore.from_url(settings.resolved_database_url)
    raw.create_tables()
    create_label_tables(raw.engine)
    store = LabelStore(raw.engine)
    scores = labelled_scores(store, settings)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    assert topics.valid_readings in subscribed(topics, settings.labels_score_streamed)

    streamed, watcher = watched_scorer(settings)  # the champion, from the registry
    producer = make_producer(settings)
    await producer.start()
    client = LabelStudioClient("http://127.0.0.1:9", "unused")  # scoring never calls it
    try:
        assert watcher.current is not None and watcher.current.version == version
        intake = LabelIntake(store, topics, candidate_config(settings), scores, streamed)
        sync = LabelSync.from_settings(client, store, settings)
        label(store, 0, STREAMED - 1, "normal", 1)
        label(store, 60, 90, "fault", 2)

        async def send(topic: str, records: list[ValidReading] | list[Prediction]) -> None:
            await publish_all(producer, [(topic, SENSOR.encode(), r.to_bytes()) for r in records])

        # Served first: only the served readings are scored.
        first = served(settings, version, [readings[s] for s in SERVED_FIRST])
        assert len(first) == len(SERVED_FIRST)
        await send(topics.predictions, first)
        intake.take(await read_topic(settings, topics.predictions))
        sync.score(settings.labels_performance_window)
        name = "driftline_labelled_readings"
        assert gauge(name, model_version=version) == len(SERVED_FIRST)

        # The stream: every reading scored, the served ones kept as served.
        await send(topics.valid_readings, readings)
        intake.take(await read_topic(settings, topics.valid_readings))
        sync.score(settings.labels_performance_window)
        assert gauge(name, model_version=version) == STREAMED
        by_source = "driftline_labelled_readings_by_source"
        assert gauge(by_source, model_version=version, source="served") == len(SERVED_FIRST)
        assert gauge(by_source, model_version=version, source="streamed") == STREAMED - len(
            SERVED_FIRST
        )

        # Served after being streamed: the served prediction replaces the streamed one.
        later = served(settings, version, [readings[s] for s in SERVED_LATER])
        await send(topics.predictions, later)
        # Everything delivered again (a restart before the commit): nothing is added.
        again = await read_topic(settings, topics.predictions)
        again += await read_topic(settings, topics.valid_readings)
        intake.take(again)
        intake.take(again)
        sync.score(settings.labels_performance_window)

        rows = stored(store)
        assert set(rows) == {r.reading_id for r in readings}  # each reading once
        served_ids = {p.reading_id: p.anomaly_probability for p in first + later}
        assert {i for i, (source, _) in rows.items() if source == "served"} == set(served_ids)
        assert {i: rows[i][1] for i in served_ids} == pytest.approx(served_ids, rel=1e-5, abs=1e-6)
        assert gauge(name, model_version=version) == STREAMED
        assert gauge(by_source, model_version=version, source="served") == len(served_ids)
        assert gauge(by_source, model_version=version, source="streamed") == STREAMED - len(
            served_ids
        )
        streamed_scored = "driftline_labels_streamed_readings_total"
        assert gauge(streamed_scored, outcome="scored") >= STREAMED
    finally:
        client.close()
        await producer.stop()
        watcher.stop()
        raw.engine.dispose()
