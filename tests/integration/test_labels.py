"""Labels in the loop against a real Label Studio (its own virtualenv, SQLite, a free port and
an API token made for it), the real broker, MariaDB and SQLite."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from typer.testing import CliRunner

from driftline.anomaly.baseline_store import BaselineStore
from driftline.cli.main import app
from driftline.core.profile import load_profile
from driftline.core.records import LabelRecorded, Prediction, Reading, RetrainRequest
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.labels.cli import sync_once
from driftline.labels.client import LabelStudioClient, LabelStudioUnavailable
from driftline.labels.interface import label_config, task_data
from driftline.labels.store import LabelStore, create_label_tables, label_tasks
from driftline.labels.sync import LabelSync
from driftline.labels.up import start_labeling
from driftline.labels.webhook import make_app, serve
from driftline.platform.broker import free_port
from driftline.platform.ports import PortPlan
from driftline.platform.procs import signal_group
from driftline.platform.supervisor import Supervisor
from driftline.store.raw_store import RawStore
from driftline.store.tables import trigger_decisions
from driftline.streaming.kafka import ensure_topics, make_producer, publish_all
from driftline.streaming.messages import Message
from driftline.training.anomaly_data import recordings
from driftline.training.datarepo import DataRepo
from driftline.training.preprocess import preprocess
from driftline.training.train import versioned_baselines
from tests.browser import chromium
from tests.label_studio import (
    LabelStudioForTests,
    executable,
    login_cookies,
    running_label_studio,
)
from tests.processes import port_block
from tests.streams import read_topic, running, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

T0 = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
SECONDS = 60
VALUES = {
    "Accelerometer1RMS": 0.2,
    "Accelerometer2RMS": 0.3,
    "Current": 2.4,
    "Pressure": 0.1,
    "Temperature": 70.0,
    "Thermocouple": 28.0,
    "Voltage": 230.0,
    "Volume Flow RateRMS": 125.0,
}


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioForTests]:
    yield from running_label_studio(tmp_path_factory.mktemp("label-studio"))


def labelled_settings(make_settings, label_studio: LabelStudioForTests, **extra) -> Settings:
    return make_settings(
        label_studio_url=label_studio.url,
        label_studio_token=label_studio.token,
        label_studio_project=f"test {uuid.uuid4().hex[:8]}",
        **extra,
    )


def store_readings(settings: Settings, sensors: list[str]) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    raw = RawStore.from_url(settings.resolved_database_url)
    raw.create_tables()
    topic = Topics(settings.topic_prefix).raw_readings
    messages = []
    for sensor in sensors:
        for s in range(SECONDS):
            values = {**VALUES, "Current": 2.4 + (3.0 if 20 <= s < 40 else 0.0)}
            reading = Reading(sensor_id=sensor, ts=T0 + timedelta(seconds=s), seq=s, values=values)
            messages.append(Message(topic, 0, len(messages), sensor.encode(), reading.to_bytes()))
    raw.add_messages(messages)
    raw.engine.dispose()


def predictions(sensor: str, version: str = "1") -> list[Prediction]:
    """Anomalous from second 20 to 39: one predicted episode."""
    return [
        Prediction(
            reading_id=f"{sensor}-{s}",
            sensor_id=sensor,
            ts=T0 + timedelta(seconds=s),
            anomaly_probability=0.9 if 20 <= s < 40 else 0.1,
            label=int(20 <= s < 40),
            model_name="driftline-anomaly",
            model_version=version,
        )
        for s in range(SECONDS)
    ]


async def publish_stream(settings: Settings, sensor: str, drifted_sensor: str) -> None:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    request = RetrainRequest(
        reason="3 drifted windows",
        sensors=[drifted_sensor],
        drift_event_ids=["e1"],
        data_start=T0,
        data_end=T0 + timedelta(seconds=SECONDS - 1),
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        items = [
            (topics.predictions, p.sensor_id.encode(), p.to_bytes()) for p in predictions(sensor)
        ]
        items.append((topics.retrain_requests, None, request.to_bytes()))
        await publish_all(producer, items)
    finally:
        await producer.stop()


def client_for(settings: Settings) -> LabelStudioClient:
    assert settings.label_studio_url and settings.label_studio_token
    return LabelStudioClient(
        settings.label_studio_url, settings.label_studio_token.get_secret_value()
    )


def project_tasks(settings: Settings) -> list[dict]:
    with client_for(settings) as client:
        project = client.ensure_project(
            settings.label_studio_project, label_config(load_profile(settings.profile_path))
        )
        return list(client.tasks(project))


def verdict(choice: str) -> dict:
    return {
        "from_name": "verdict",
        "to_name": "ts",
        "type": "choices",
        "value": {"choices": [choice]},
    }


def region(start: float, end: float, label: str) -> dict:
    value = {"start": start, "end": end, "instant": False, "timeserieslabels": [label]}
    return {"from_name": "regions", "to_name": "ts", "type": "timeserieslabels", "value": value}


def label_rows(settings: Settings) -> list[dict]:
    raw = RawStore.from_url(settings.resolved_database_url)
    try:
        return LabelStore(raw.engine).all_labels()
    finally:
        raw.engine.dispose()


async def label_events(settings: Settings) -> list[LabelRecorded]:
    messages = await read_topic(settings, Topics(settings.topic_prefix).labels, timeout=10)
    return [LabelRecorded.model_validate_json(m.value or b"") for m in messages]


def labelled_decisions(settings: Settings) -> list[dict]:
    raw = RawStore.from_url(settings.resolved_database_url)
    try:
        with raw.engine.connect() as conn:
            rows = conn.execute(
                select(trigger_decisions).where(trigger_decisions.c.sensor_id.like("labelled:%"))
            )
            return [dict(r._mapping) for r in rows]
    finally:
        raw.engine.dispose()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_tasks_from_episodes_and_drift_then_annotations_once_and_scores_move(
    make_settings, label_studio, database_url
):
    settings = labelled_settings(
        make_settings,
        label_studio,
        database_url=database_url,
        trigger_labelled_f1_threshold=0.6,
        trigger_labelled_min_readings=50,
    )
    store_readings(settings, ["pump-001", "pump-002"])
    await publish_stream(settings, sensor="pump-001", drifted_sensor="pump-002")

    first = await sync_once(settings, idle_seconds=3)
    assert first["failures"] == [] and first["messages_taken"] == SECONDS + 1
    assert first["tasks_created"] == 2
    tasks = {t["data"]["kind"]: t for t in project_tasks(settings)}
    assert set(tasks) == {"anomaly_episode", "drift_episode"}
    episode, drift = tasks["anomaly_episode"], tasks["drift_episode"]
    assert (episode["data"]["sensor_id"], drift["data"]["sensor_id"]) == ("pump-001", "pump-002")
    # The episode's readings (with context) and the drift window, drawn from the raw store.
    assert len(episode["data"]["ts"]["time"]) == SECONDS
    assert len(drift["data"]["ts"]["time"]) == SECONDS
    again = await sync_once(settings, idle_seconds=1)
    assert (again["tasks_created"], again["messages_taken"]) == (0, 0)
    assert len(project_tasks(settings)) == 2

    # The operator says the whole episode task is a fault: recall 20/60, precision 1, F1 0.5,
    # below the labelled-F1 rule's 0.6: the trigger fires a retraining.
    with client_for(settings) as client:
        made = client.create_annotation(episode["id"], [verdict("fault")])
    recorded_before = sample("driftline_labels_recorded_total", label="fault", source="pull")
    async with running(settings, ["retrain-trigger"]):
        after = await sync_once(settings, idle_seconds=1)
        await wait_for(lambda: labelled_decisions(settings), 60, "the labelled decision")
    (decision,) = labelled_decisions(settings)
    assert decision["fired"] and decision["sensor_id"] == "labelled:1"
    assert "labelled F1 0.500" in decision["reason"] and "below 0.6" in decision["reason"]
    topics = Topics(settings.topic_prefix)
    requests = [
        RetrainRequest.model_validate_json(m.value or b"")
        for m in await read_topic(settings, topics.retrain_requests, timeout=10)
    ]
    fired = [r for r in requests if r.request_id == decision["request_id"]]
    assert len(fired) == 1 and fired[0].sensors == ["pump-001"]
    assert fired[0].data_start == T0 and fired[0].data_end == T0 + timedelta(seconds=SECONDS - 1)
    assert after["labels_new"] == 1 and after["labels_published"] == 1
    score = after["scores"]["1"]
    assert (score["readings"], score["precision"]) == (SECONDS, 1.0)
    assert score["recall"] == pytest.approx(20 / SECONDS)
    assert sample("driftline_labelled_f1_ratio", model_version="1") == pytest.approx(score["f1"])
    assert sample("driftline_labels_recorded_total", label="fault", source="pull") == (
        recorded_before + 1
    )

    # Synced again: nothing changes, nothing is published twice.
    same = await sync_once(settings, idle_seconds=1)
    assert (same["labels_new"], same["labels_published"]) == (0, 0)
    rows = label_rows(settings)
    assert [(r["sensor_id"], r["label"], r["source"]) for r in rows] == [
        ("pump-001", "fault", "pull")
    ]
    events = await label_events(settings)
    assert [e.label_id for e in events] == [rows[0]["label_id"]]

    # The operator corrects it: only seconds 20-39 were a fault. The new version replaces the
    # old rows, and the labelled F1 moves to 1.
    with client_for(settings) as client:
        client.update_annotation(
            made["id"],
            [
                verdict("normal"),
                region(T0.timestamp() + 19.5, T0.timestamp() + 39.5, "fault"),
            ],
        )
    corrected = await sync_once(settings, idle_seconds=1)
    assert corrected["labels_new"] == 2
    assert corrected["scores"]["1"]["f1"] == 1.0
    assert sample("driftline_labelled_f1_ratio", model_version="1") == 1.0
    rows = label_rows(settings)
    assert sorted(r["label"] for r in rows) == ["fault", "normal"]
    fault = next(r for r in rows if r["label"] == "fault")
    assert fault["end_ts"] - fault["start_ts"] == timedelta(seconds=20)

    # The training data holds the labels: preprocess joins them onto the readings.
    end = T0 + timedelta(seconds=SECONDS - 1)
    preprocess(settings, tag="labelled", start=T0, end=end, sensors=["pump-001"])
    dataset = DataRepo(settings).load_dataset("labelled")
    seconds = (pd.to_datetime(dataset["ts"], utc=True) - pd.Timestamp(T0)).dt.total_seconds()
    assert len(dataset) == SECONDS
    assert dataset["label"].tolist() == [float(20 <= s < 40) for s in seconds]
    # The dataset version pins the label rows it was joined with.
    pinned = DataRepo(settings).load_labels("labelled")
    assert pinned is not None
    assert sorted(pinned["label_id"]) == sorted(r["label_id"] for r in rows)

    # The period labelled normal makes pump-001's baseline (the operator's step), and the train
    # step's baselines for the dataset are it, versioned with it; the rows after its first span
    # are scored.
    extend = ["baseline", "set", "pump-001", "--from-labels"]
    made = CliRunner().invoke(app, extend, env=settings.to_env())
    assert made.exit_code == 0, made.output
    assert "40 of 40 labelled normal added, 1 period)" in made.output
    baseline = BaselineStore(settings.data_dir / "baselines").get("pump-001")
    assert baseline is not None and baseline.source == "labelled-normal"
    at = T0.__add__
    assert [(a, b) for a, b in baseline.spans()] == [
        (pd.Timestamp(at(timedelta(seconds=a))), pd.Timestamp(at(timedelta(seconds=b))))
        for a, b in [(0, 19), (40, 59)]
    ]
    features = load_profile(settings.profile_path).features
    used = versioned_baselines(settings, "labelled", dataset, features)
    assert used == {"pump-001": baseline}
    assert DataRepo(settings).load_baselines("labelled") == [baseline]
    (record,) = recordings(dataset, used, features)
    assert record.scored_from == 20


async def test_a_task_sent_before_a_crash_is_not_sent_again_and_stored_labels_are_published_once(
    make_settings, label_studio, mariadb_url
):
    settings = labelled_settings(make_settings, label_studio, database_url=mariadb_url)
    store_readings(settings, ["pump-003"])
    await publish_stream(settings, sensor="pump-003", drifted_sensor="pump-003")
    profile = load_profile(settings.profile_path)
    # A first sync that is killed after Label Studio imported its tasks, before it marked them.
    raw = RawStore.from_url(settings.resolved_database_url)
    create_label_tables(raw.engine)
    store = LabelStore(raw.engine)
    with client_for(settings) as client:
        sync = LabelSync(client, store, profile, project_title=settings.label_studio_project)
        from driftline.labels.candidates import drift_candidates

        request = RetrainRequest(
            reason="3 drifted windows",
            sensors=["pump-003"],
            drift_event_ids=["e1"],
            data_start=T0,
            data_end=T0 + timedelta(seconds=SECONDS - 1),
        )
        (candidate,) = drift_candidates(request)
        store.add_candidates([candidate], datetime.now(UTC))
        client.import_tasks(sync.project_id(), [task_data(candidate, profile, [])])
    resumed = await sync_once(settings, idle_seconds=3)
    assert resumed["failures"] == []
    assert resumed["tasks_created"] == 1  # the episode's task only: the drift task was there
    keys = [t["data"]["task_key"] for t in project_tasks(settings)]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 2

    # Then a sync killed after storing an annotation's labels, before publishing them.
    drift_task = next(t for t in project_tasks(settings) if t["data"]["kind"] == "drift_episode")
    with client_for(settings) as client:
        client.create_annotation(drift_task["id"], [verdict("normal")])
        sync = LabelSync(client, store, profile, project_title=settings.label_studio_project)
        assert sync.pull_annotations() == 1
    raw.engine.dispose()
    restarted = await sync_once(settings, idle_seconds=1)
    assert (restarted["labels_new"], restarted["labels_published"]) == (0, 1)
    events = await label_events(settings)
    assert [(e.sensor_id, e.label, e.ls_task_id) for e in events] == [
        ("pump-003", "normal", drift_task["id"])
    ]


async def test_webhook_delivers_at_once_and_bad_annotations_are_refused(
    make_settings, label_studio, tmp_path: Path
):
    port = free_port()
    settings = labelled_settings(
        make_settings, label_studio, labels_webhook_url=f"http://127.0.0.1:{port}/webhook"
    )
    store_readings(settings, ["pump-004"])
    await publish_stream(settings, sensor="pump-004", drifted_sensor="pump-004")
    first = await sync_once(settings, idle_seconds=3)  # registers the webhook with the project
    assert first["tasks_created"] == 2
    raw = RawStore.from_url(settings.resolved_database_url)
    store = LabelStore(raw.engine)
    profile = load_profile(settings.profile_path)
    client = client_for(settings)
    sync = LabelSync(client, store, profile, project_title=settings.label_studio_project)
    stored = asyncio.Event()

    async def after() -> None:
        stored.set()

    runner = await serve(make_app(sync, after), "127.0.0.1", port)
    try:
        task = next(t for t in project_tasks(settings) if t["data"]["kind"] == "anomaly_episode")
        await asyncio.to_thread(client.create_annotation, task["id"], [verdict("fault")])
        await wait_for(lambda: label_rows(settings), 60, "the webhook's label")
        assert [r["source"] for r in label_rows(settings)] == ["webhook"]
        assert stored.is_set()

        # The pull finds the same annotation: nothing new.
        later = await sync_once(settings, idle_seconds=1)
        assert (later["labels_new"], later["labels_published"]) == (0, 1)

        # Bad input straight at the webhook: refused with its reason, counted, no crash.
        import httpx

        async with httpx.AsyncClient() as http:
            bad_range = region(T0.timestamp() - 3600, T0.timestamp() - 3000, "fault")
            cases = {
                "unknown_choice": ({**task}, [verdict("broken")]),
                "range_outside_task": ({**task}, [bad_range]),
                "unknown_task": (
                    {**task, "data": {**task["data"], "task_key": "nope"}},
                    [verdict("fault")],
                ),
                "unknown_sensor": (
                    {**task, "data": {**task["data"], "sensor_id": "no such sensor!"}},
                    [verdict("fault")],
                ),
            }
            for check, (bad_task, result) in cases.items():
                before = sample("driftline_annotations_rejected_total", check=check)
                body = {
                    "action": "ANNOTATION_CREATED",
                    "task": bad_task,
                    "annotation": {"id": 999, "result": result},
                }
                answer = await http.post(f"http://127.0.0.1:{port}/webhook", json=body)
                assert answer.status_code == 200 and answer.json() == {"labels": 0}
                assert sample("driftline_annotations_rejected_total", check=check) == before + 1
            not_json = await http.post(f"http://127.0.0.1:{port}/webhook", content=b"\xff{")
            assert not_json.status_code == 400
        assert len(label_rows(settings)) == 1
    finally:
        await runner.cleanup()
        client.close()
        raw.engine.dispose()

    # An annotation refused (a region outside its task) stays in Label Studio and is tried
    # again on each pass: corrected, it arrives.
    drift = next(t for t in project_tasks(settings) if t["data"]["kind"] == "drift_episode")
    outside = region(T0.timestamp() - 3600, T0.timestamp() - 3000, "fault")
    with client_for(settings) as ls:
        refused = ls.create_annotation(drift["id"], [outside])
        before = sample("driftline_annotations_rejected_total", check="range_outside_task")
        assert (await sync_once(settings, idle_seconds=1))["labels_new"] == 0
        assert (await sync_once(settings, idle_seconds=1))["labels_new"] == 0
        after = sample("driftline_annotations_rejected_total", check="range_outside_task")
        assert after == before + 2  # once per pass
        ls.update_annotation(refused["id"], [verdict("normal")])
    assert (await sync_once(settings, idle_seconds=1))["labels_new"] == 1
    assert sorted(r["label"] for r in label_rows(settings)) == ["fault", "normal"]

    # Label Studio away: the pass says so, and what is stored still goes out.
    away = settings.model_copy(update={"label_studio_url": f"http://127.0.0.1:{free_port()}"})
    failures_before = sample("driftline_label_sync_failures_total", dependency="label_studio")
    result = await sync_once(away, idle_seconds=1)
    assert any(f.startswith("label_studio") for f in result["failures"])
    assert sample("driftline_label_sync_failures_total", dependency="label_studio") == (
        failures_before + 1
    )


async def test_an_operator_sees_the_task_as_a_time_series(make_settings, label_studio, tmp_path):
    """Headless Chromium opens a task in Label Studio's page: one line per measurement is drawn
    (the screenshot in docs/labels.md comes from this test)."""
    settings = labelled_settings(make_settings, label_studio)
    store_readings(settings, ["pump-005"])
    await publish_stream(settings, sensor="pump-005", drifted_sensor="pump-005")
    assert (await sync_once(settings, idle_seconds=3))["tasks_created"] == 2
    task = next(t for t in project_tasks(settings) if t["data"]["kind"] == "anomaly_episode")
    profile = load_profile(settings.profile_path)
    cookies = await asyncio.to_thread(login_cookies, label_studio)
    # Channels whose line is drawn: an SVG path with line segments (flat stretches are
    # simplified, so a path's length says little).
    drawn = (
        "Array.from(document.querySelectorAll('.htx-timeseries-channel'))"
        ".filter(c => Array.from(c.querySelectorAll('path'))"
        ".some(p => /[LC]/.test(p.getAttribute('d') || ''))).length"
    )
    async with chromium(tmp_path / "chromium-profile", tmp_path / "chromium.log") as page:
        for name, value in cookies.items():
            await page.call("Network.setCookie", name=name, value=value, url=label_studio.url)
        url = f"{label_studio.url}/projects/{task['project']}/data?task={task['id']}"
        await page.call("Page.navigate", url=url)

        loading = "document.querySelectorAll('[class*=_loading], [class*=spinner]').length"

        async def lines() -> bool:
            channels = await page.evaluate(drawn) or 0
            return channels >= len(profile.features) and not await page.evaluate(loading)

        await wait_for(lines, 120, "the task's time series to be drawn", interval=1.0)

        async def shown() -> bool:  # the task's fields may come after its lines on a busy machine
            text = await page.evaluate("document.body.innerText") or ""
            return "pump-005" in text and "anomaly_episode" in text

        await wait_for(shown, 60, "the task's sensor and kind to be shown", interval=1.0)
        title = await page.evaluate("document.body.innerText")
        assert "pump-005" in title and "anomaly_episode" in title
        for name in profile.features:
            assert name in title  # each channel's legend
        shot = tmp_path / "label-studio-task.png"
        await page.screenshot(shot)
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


async def test_up_starts_label_studio_and_the_labeler_which_keeps_the_project(
    make_settings, tmp_path
):
    """What `driftline up` runs for labeling: Label Studio from .labelstudio-venv with a user
    and token made for it, and the labeler, whose first successful pass makes the project."""
    executable()  # installs Label Studio if it is not there yet
    settings = make_settings(label_studio_port=free_port(), labels_sync_seconds=2.0)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await ensure_topics(settings, Topics(settings.topic_prefix).all())
    supervisor = Supervisor(tmp_path / "logs")
    supervisor.env.update(settings.to_env())
    metrics_port = free_port()
    try:
        url = start_labeling(settings, supervisor, PortPlan(), metrics_port)
        assert url == f"http://127.0.0.1:{settings.label_studio_port}"
        token = (settings.data_dir / "label-studio-secrets" / "token").read_text()
        assert (settings.data_dir / "label-studio-secrets" / "token").stat().st_mode & 0o077 == 0

        def project_made() -> bool:
            try:
                with LabelStudioClient(url, token) as client:
                    titles = [p["title"] for p in client._paged("/api/projects", {})]
            except LabelStudioUnavailable:
                return False
            return settings.label_studio_project in titles

        await wait_for(project_made, 900, "Label Studio up and the labeler's project", 5.0)
        assert {c.name for c in supervisor.children} == {"label-studio", "labeler"}
    finally:
        supervisor.stop_all()


async def test_an_annotation_arrives_once_when_the_labeler_is_killed_and_its_webhook_lost(
    make_settings, label_studio, mariadb_url, tmp_path: Path
):
    """The labeler service as its own process, SIGKILLed while it works: once right after an
    annotation's webhook reached it (stored, maybe not yet published), once as soon as the
    restarted one stored the annotation made while it was dead (whose webhook was lost). Each
    annotation is one label row, published, and its event carries that row's id."""
    port = port_block(1)  # each restarted labeler binds it again
    settings = labelled_settings(
        make_settings,
        label_studio,
        database_url=mariadb_url,
        labels_webhook_port=port,
        labels_webhook_url=f"http://127.0.0.1:{port}/webhook",
        labels_sync_seconds=2.0,
    )
    store_readings(settings, ["pump-006"])
    await publish_stream(settings, sensor="pump-006", drifted_sensor="pump-006")
    raw = RawStore.from_url(settings.resolved_database_url)
    store = LabelStore(raw.engine)
    supervisor = Supervisor(tmp_path / "logs")
    supervisor.env.update(settings.to_env())

    def start() -> subprocess.Popen[bytes]:
        child = supervisor.start_service("labeler", {"DRIFTLINE_METRICS_PORT": str(free_port())})
        assert child.proc is not None
        return child.proc

    def kill(proc: subprocess.Popen[bytes]) -> None:
        signal_group(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL

    def sent() -> bool:
        with raw.engine.connect() as conn:
            ids = conn.execute(select(label_tasks.c.ls_task_id)).scalars().all()
        return len(ids) == 2 and None not in ids

    try:
        labeler = start()
        await wait_for(sent, 300, "the labeler's two tasks in Label Studio", 1.0)
        tasks = {t["data"]["kind"]: t for t in project_tasks(settings)}
        with client_for(settings) as client:
            # The webhook is delivered while the labeler runs; it dies just after.
            first = client.create_annotation(tasks["anomaly_episode"]["id"], [verdict("fault")])
            kill(labeler)
            # Made while it is dead: the webhook is lost; only the pull can find it.
            second = client.create_annotation(tasks["drift_episode"]["id"], [verdict("normal")])

        def stored(annotation_id: int) -> bool:
            return any(r["annotation_id"] == annotation_id for r in store.all_labels())

        labeler = start()
        await wait_for(lambda: stored(second["id"]), 300, "the lost webhook's annotation", 0.1)
        kill(labeler)  # as soon as it stored it: before, during or after publishing
        labeler = start()
        await wait_for(lambda: not store.unpublished(), 300, "every label published", 0.5)
    finally:
        supervisor.stop_all()
        raw.engine.dispose()

    rows = label_rows(settings)
    assert sorted((r["annotation_id"], r["label"]) for r in rows) == sorted(
        [(first["id"], "fault"), (second["id"], "normal")]
    )
    assert all(r["published"] for r in rows)
    source = {r["annotation_id"]: r["source"] for r in rows}
    # The second's webhook found no labeler: only the pull brought it. The first's webhook
    # reached the labeler before Label Studio answered the POST, but on a busy machine Label
    # Studio gives up waiting for the answer after WEBHOOK_TIMEOUT and the kill may come
    # before the labeler stored it: then the pull brings it, once (asserted above).
    assert source[second["id"]] == "pull"
    events = await label_events(settings)
    # A kill between publishing and marking publishes again, with the same label id.
    assert {e.label_id for e in events} == {r["label_id"] for r in rows}
    assert sorted({(e.annotation_id, e.label) for e in events}) == sorted(
        (r["annotation_id"], r["label"]) for r in rows
    )
