"""Preprocess against both raw stores: SKAB readings in, a tagged DVC dataset version out."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from driftline.core.errors import DriftlineError
from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.store.raw_store import RawStore
from driftline.store.tables import raw_readings
from driftline.streaming.messages import Message
from driftline.training.datarepo import DVC_FILE, DataRepo, DataRepoError
from driftline.training.dataset import load_readings, read_only_connection, run_select
from driftline.training.features import add_features, feature_columns
from driftline.training.preprocess import preprocess

pytestmark = pytest.mark.integration

BASE = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
SENSORS = ["skab-valve1-0", "skab-valve1-1", "skab-valve1-2"]
START, END = BASE + timedelta(minutes=3), BASE + timedelta(minutes=12)
WINDOW = 10
REFUSED = "READ ONLY transaction|readonly database"  # MariaDB's and SQLite's refusals


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Repository and remote default to <data_dir>/...; None overrides any DRIFTLINE_* env.
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        data_repo_path=None,
        dvc_remote_url=None,
        feature_window=WINDOW,
    )


@pytest.fixture
def skab(skab_dir: Path) -> pd.DataFrame:
    """Three valve1 recordings as three sensors, each moved to start at BASE."""
    frames = []
    for i, sensor in enumerate(SENSORS):
        frame = pd.read_csv(skab_dir / "valve1" / f"{i}.csv", sep=";", parse_dates=["datetime"])
        offset = frame["datetime"] - frame["datetime"].iloc[0]
        frame["ts"] = pd.Timestamp(BASE) + offset
        frame["sensor_id"] = sensor
        frame["seq"] = range(len(frame))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def wire(sensor: str, ts: datetime, seq: int, values: dict[str, float], label: object) -> bytes:
    ts_text = ts.isoformat(timespec="microseconds").replace("+00:00", "Z")
    doc = {"sensor_id": sensor, "ts": ts_text, "seq": seq, "values": values, "label": label}
    return orjson.dumps(doc)


def land(settings: Settings, skab: pd.DataFrame) -> None:
    features = load_profile(settings.profile_path).features
    payloads = [
        wire(row["sensor_id"], row["ts"].to_pydatetime(), int(row["seq"]),
             {f: float(row[f]) for f in features}, int(row["anomaly"]))
        for row in skab.to_dict("records")
    ]  # fmt: skip
    good = {f: float(skab[f].iloc[0]) for f in features}
    mid = START + timedelta(minutes=2, microseconds=500_000)
    payloads += [
        b"{not json",
        wire(SENSORS[0], mid, 90_001, {**good, "Current": 999.0}, 0),  # in_range
        wire(SENSORS[1], mid, 90_002, {k: v for k, v in good.items() if k != "Voltage"}, 0),
        wire(SENSORS[0], mid, 90_003, good, 7),  # label: wrong_type
        wire("other-9", mid, 90_004, good, 0),  # known_sensor
        wire(SENSORS[0], datetime(2190, 1, 1, tzinfo=UTC), 1, good, 0),  # not_in_future
    ]
    messages = [
        Message(topic="raw", partition=0, offset=i, key=None, value=p)
        for i, p in enumerate(payloads)
    ]
    store = RawStore.from_url(settings.resolved_database_url)
    store.create_tables()
    store.add_messages(messages)
    store.engine.dispose()


def expected(skab: pd.DataFrame, start: datetime, end: datetime, sensors: list[str]) -> int:
    ts = skab["ts"]
    return int(((ts >= start) & (ts <= end) & skab["sensor_id"].isin(sensors)).sum())


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_preprocess_saves_valid_features_as_a_tagged_version(
    settings: Settings, skab: pd.DataFrame
) -> None:
    land(settings, skab)
    chosen = SENSORS[:2]
    features = load_profile(settings.profile_path).features

    result = preprocess(settings, tag="ds-1", start=START, end=END, sensors=chosen)

    # Invalid rows in range and of the chosen sensors are counted and left out.
    assert result.invalid_by_check == {"in_range": 1, "missing_measurement": 1, "wrong_type": 1}
    assert result.rows_invalid == 3
    assert result.rows == expected(skab, START, END, chosen)
    assert result.sensors == chosen
    assert result.start >= START and result.end <= END

    repo = DataRepo(settings)
    dataset = repo.load_dataset("ds-1")
    readings, report = load_readings(settings, START, END, chosen)
    pd.testing.assert_frame_equal(dataset, add_features(readings, features, WINDOW))
    assert report.rows_read == result.rows + 3
    assert set(feature_columns(features)) <= set(dataset.columns)
    assert dataset["ts"].between(START, END).all()
    assert sorted(dataset["sensor_id"].unique()) == chosen
    assert set(dataset["label"].unique()) <= {0.0, 1.0}
    # Features per sensor: each sensor's rolling window starts with its own first reading.
    for _, rows in dataset.groupby("sensor_id"):
        assert rows["ts"].is_monotonic_increasing
        assert rows["Current_std"].iloc[0] == 0.0
        last = rows["Current"].iloc[-WINDOW:]
        assert rows["Current_mean"].iloc[-1] == pytest.approx(last.mean())
        assert rows["Current_std"].iloc[-1] == pytest.approx(last.std())

    # The version: a git tag whose .dvc pointer names the data, which the remote holds.
    root = settings.resolved_data_repo
    assert root.is_relative_to(settings.data_dir.resolve())
    assert "ds-1" in git(root, "tag", "--list").split()
    pointer = yaml.safe_load(git(root, "show", f"ds-1:{DVC_FILE}"))
    md5 = pointer["outs"][0]["md5"]
    assert repo.dataset_hash("ds-1") == result.dvc_md5 == md5
    remote = Path(settings.resolved_dvc_remote)
    assert remote.is_relative_to(settings.data_dir.resolve())
    stored = remote / "files" / "md5" / md5[:2] / md5[2:]
    assert hashlib.md5(stored.read_bytes()).hexdigest() == md5

    # With the local cache gone, the version still loads, from the remote.
    shutil.rmtree(root / ".dvc" / "cache")
    pd.testing.assert_frame_equal(repo.load_dataset("ds-1"), dataset)

    params = {"max_depth": 4, "eta": 0.1, "subsample": 0.8}
    repo.save_params("ds-1", params)
    assert repo.load_params("ds-1") == params
    assert json.loads(git(root, "show", "ds-1-params:params/ds-1.json")) == params

    # A second version leaves the first intact; saving a tag again is a no-op.
    later = preprocess(settings, tag="ds-2", start=START, end=None, sensors=None)
    assert later.dvc_md5 != result.dvc_md5
    assert later.sensors == SENSORS
    assert later.invalid_by_check["known_sensor"] == 1
    assert later.invalid_by_check["not_in_future"] == 1
    assert {"ds-1", "ds-1-params", "ds-2"} <= set(repo.tags())
    pd.testing.assert_frame_equal(repo.load_dataset("ds-1"), dataset)
    assert repo.dataset_hash("ds-1") == md5
    assert repo.load_params("ds-1") == params
    again = preprocess(settings, tag="ds-1", start=START, end=END, sensors=chosen)
    assert again.dvc_md5 == md5
    with pytest.raises(DataRepoError, match="other data"):
        preprocess(settings, tag="ds-1", start=START, end=None, sensors=chosen)


def test_invalid_rows_without_a_filter_are_counted_too(settings: Settings, skab: pd.DataFrame):
    land(settings, skab)
    frame, report = load_readings(settings, None, None, None)
    # The row that is not JSON has no reading identity: it cannot be a reading, and is not read.
    assert report.rows_read == len(skab) + 5
    assert report.rows_valid == len(skab) == len(frame)
    assert report.invalid_by_check == {
        "in_range": 1, "known_sensor": 1, "missing_measurement": 1, "not_in_future": 1,
        "wrong_type": 1,
    }  # fmt: skip
    assert list(frame.columns[:4]) == ["reading_id", "sensor_id", "ts", "label"]
    assert str(frame["ts"].dtype).endswith("UTC]")
    with pytest.raises(DriftlineError, match="no valid readings"):
        preprocess(settings, tag="empty", start=END, end=START, sensors=None)


def test_read_only_connection_refuses_writes(settings: Settings, skab: pd.DataFrame) -> None:
    land(settings, skab.head(5))
    url = settings.resolved_database_url
    with read_only_connection(url) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(raw_readings)).scalar() == 11
        with pytest.raises(sa.exc.DBAPIError, match=REFUSED):
            conn.execute(sa.delete(raw_readings))
    with read_only_connection(url) as conn, pytest.raises(sa.exc.DBAPIError, match=REFUSED):
        conn.execute(sa.text("CREATE TABLE intruder (x INTEGER)"))
    assert RawStore.from_url(url).count() == 11


def test_ad_hoc_selects_run_read_only(settings: Settings, skab: pd.DataFrame) -> None:
    land(settings, skab.head(5))
    counts = run_select(
        settings,
        "SELECT sensor_id, COUNT(*) AS n FROM raw_readings "
        "WHERE sensor_id LIKE 'skab-%' GROUP BY sensor_id ORDER BY sensor_id;",
    )
    # Five readings of the first sensor, plus the malformed ones with a sensor id.
    assert counts.to_dict("records") == [
        {"sensor_id": SENSORS[0], "n": 8},
        {"sensor_id": SENSORS[1], "n": 1},
    ]
    with pytest.raises(DriftlineError):
        run_select(settings, "DELETE FROM raw_readings")


def test_baselines_are_versioned_with_the_dataset(settings: Settings, skab: pd.DataFrame) -> None:
    """The train step's baselines: DVC-tracked beside the dataset, tagged <tag>-baselines,
    read back equal (from the remote too); the same again is a no-op, other ones an error."""
    from driftline.anomaly.baseline import from_first_readings
    from driftline.training.anomaly_data import sensor_baselines

    features = load_profile(settings.profile_path).features
    repo = DataRepo(settings)
    repo.save_dataset("with-baselines", skab[["sensor_id", "ts", *features]])
    assert repo.load_baselines("with-baselines") is None
    made = sensor_baselines(settings, skab, features)
    assert sorted(made) == sorted(SENSORS) and {b.count for b in made.values()} == {400}
    md5 = repo.save_baselines("with-baselines", list(made.values()))
    assert repo.save_baselines("with-baselines", list(made.values())) == md5
    assert "with-baselines-baselines" in repo.tags()
    shutil.rmtree(repo.root / ".dvc" / "cache")  # from the DVC remote, not the local cache
    loaded = repo.load_baselines("with-baselines")
    assert loaded is not None
    assert {b.sensor_id: b.version for b in loaded} == {s: b.version for s, b in made.items()}
    other = from_first_readings(skab[skab["sensor_id"] == SENSORS[0]], SENSORS[0], features, 300)
    assert other is not None
    with pytest.raises(DataRepoError, match="exist and differ"):
        repo.save_baselines("with-baselines", [other])


def label_row(sensor: str, start: datetime, end: datetime, label: str, n: int) -> dict:
    naive = {"start_ts": start, "end_ts": end, "annotated_at": end, "recorded_at": end}
    return {
        "label_id": f"{n:032x}",
        "task_key": "t" * 32,
        "ls_task_id": 10 + n,
        "annotation_id": 100 + n,
        "annotation_version": "v1",
        "sensor_id": sensor,
        "label": label,
        "annotator": "operator@plant",
        "source": "pull",
        "published": n % 2 == 0,
        **{k: v.replace(tzinfo=None) for k, v in naive.items()},
    }


def test_a_dataset_version_pins_the_labels_it_joined(settings: Settings, skab: pd.DataFrame):
    """The label rows preprocess joined are DVC-tracked under the dataset's tag (from the remote
    too); rows outside the range or of other sensors are not; a retry with other labels fails."""
    from driftline.labels.store import create_label_tables, labels
    from driftline.training.datarepo import LABELS_PATH

    land(settings, skab)
    store = RawStore.from_url(settings.resolved_database_url)
    create_label_tables(store.engine)
    at = START.__add__
    rows = [
        label_row(SENSORS[0], at(timedelta(minutes=1)), at(timedelta(minutes=2)), "fault", 1),
        label_row(SENSORS[1], START - timedelta(minutes=1), at(timedelta(seconds=30)), "normal", 2),
        label_row(SENSORS[0], END + timedelta(minutes=1), END + timedelta(minutes=2), "fault", 3),
        label_row(SENSORS[2], at(timedelta(minutes=1)), at(timedelta(minutes=2)), "fault", 4),
    ]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(labels), rows)

    result = preprocess(settings, tag="pinned", start=START, end=END, sensors=SENSORS[:2])

    repo = DataRepo(settings)
    assert result.label_rows == 2 and result.labels_md5 == repo.labels_hash("pinned")
    root = settings.resolved_data_repo
    assert f"{LABELS_PATH}.dvc" in git(root, "ls-tree", "-r", "--name-only", "pinned").split()
    shutil.rmtree(root / ".dvc" / "cache")  # from the DVC remote
    pinned = repo.load_labels("pinned")
    assert pinned is not None
    assert pinned["label_id"].tolist() == [rows[0]["label_id"], rows[1]["label_id"]]
    assert "published" not in pinned.columns
    first = pinned.iloc[0]
    assert [first["sensor_id"], first["label"], first["annotation_id"]] == [
        SENSORS[0],
        "fault",
        101,
    ]
    assert first["start_ts"] == pd.Timestamp(at(timedelta(minutes=1)))
    # The dataset's labels are the pinned rows joined onto the readings.
    dataset = repo.load_dataset("pinned")
    ts = pd.to_datetime(dataset["ts"], utc=True)
    faulty = (dataset["sensor_id"] == SENSORS[0]) & ts.between(
        at(timedelta(minutes=1)), at(timedelta(minutes=2))
    )
    assert (dataset.loc[faulty, "label"] == 1.0).all() and faulty.sum() > 0

    # A retry with the same labels is a no-op; labels changed since are refused.
    assert preprocess(settings, "pinned", START, END, SENSORS[:2]).labels_md5 == result.labels_md5
    with store.engine.begin() as conn:
        conn.execute(sa.update(labels).values(annotator="someone@else"))
    with pytest.raises(DataRepoError, match="other labels"):
        preprocess(settings, tag="pinned", start=START, end=END, sensors=SENSORS[:2])
    store.engine.dispose()

    # A version saved without labels does not inherit the previous tag's.
    repo.save_dataset("unlabelled", dataset.head(5))
    assert repo.labels_hash("unlabelled") is None and repo.load_labels("unlabelled") is None
    assert repo.load_labels("pinned") is not None
