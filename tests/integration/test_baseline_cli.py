"""``driftline baseline set/show`` against a real SQLite raw store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.anomaly.baseline_store import BaselineStore
from driftline.cli.main import app
from driftline.labels.store import create_label_tables, labels
from driftline.store.raw_store import RawStore
from tests.skab import land_skab

pytestmark = pytest.mark.integration


def test_baseline_set_from_first_readings_and_a_named_period(tmp_path: Path, skab_dir: Path):
    url = f"sqlite:///{tmp_path / 'raw.db'}"
    store = RawStore.from_url(url)
    store.create_tables()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    land_skab(store, [skab_dir / "valve1" / "0.csv"], t0, "pump-001")
    land_skab(store, [skab_dir / "valve1" / "1.csv"], t0, "pump-002")
    store.engine.dispose()
    env = {
        "DATABASE_URL": url,
        "DRIFTLINE_DATA_DIR": str(tmp_path / "data"),
        "DRIFTLINE_BASELINE_READINGS": "400",
    }
    runner = CliRunner()
    raw = pd.read_csv(skab_dir / "valve1" / "0.csv", sep=";")
    measurements = list(raw.columns[1:9])

    result = runner.invoke(app, ["baseline", "set", "pump-001"], env=env)
    assert result.exit_code == 0, result.output
    baselines = BaselineStore(tmp_path / "data" / "baselines")
    first = baselines.get("pump-001")
    assert first is not None and first.source == "first-readings"
    np.testing.assert_allclose(first.values(), raw[measurements].to_numpy()[:400])

    start, end = t0 + timedelta(seconds=1000), t0 + timedelta(seconds=1099)
    result = runner.invoke(
        app,
        ["baseline", "set", "pump-001", "--from", start.isoformat(), "--to", end.isoformat()],
        env=env,
    )
    assert result.exit_code == 0, result.output
    named = baselines.get("pump-001")
    assert named is not None and named.source == "period" and named.count == 100
    np.testing.assert_allclose(named.values(), raw[measurements].to_numpy()[1000:1100])
    # The replaced baseline is kept by its version.
    assert (baselines.directory / f"pump-001.{first.version}.json").exists()

    result = runner.invoke(app, ["baseline", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert f"pump-001  version {named.version}  period  100 readings" in result.output
    assert "pump-002" not in result.output

    # Too few readings: the baseline stays pending.
    env["DRIFTLINE_BASELINE_READINGS"] = "5000"
    result = runner.invoke(app, ["baseline", "set", "pump-002"], env=env)
    assert result.exit_code == 1 and "baseline pending (1145 of 5000" in result.output
    result = runner.invoke(app, ["baseline", "show", "pump-002"], env=env)
    assert result.exit_code == 1 and "pending" in result.output
    result = runner.invoke(
        app, ["baseline", "set", "pump-002", "--from", start.isoformat()], env=env
    )
    assert result.exit_code != 0 and "both --from and --to" in result.output


def _label(sensor: str, start: datetime, end: datetime, label: str, n: int) -> dict:
    return {
        "label_id": uuid.uuid4().hex,
        "task_key": "t" * 32,
        "ls_task_id": 1,
        "annotation_id": n,
        "annotation_version": "v1",
        "sensor_id": sensor,
        "start_ts": start.replace(tzinfo=None),
        "end_ts": end.replace(tzinfo=None),
        "label": label,
        "annotator": "operator@plant",
        "annotated_at": end.replace(tzinfo=None),
        "source": "pull",
        "recorded_at": end.replace(tzinfo=None),
        "published": True,
    }


def test_a_labelled_normal_period_extends_the_baseline(
    tmp_path: Path, skab_dir: Path, database_url: str
):
    """``baseline set --from-labels``: readings operators labelled normal join the sensor's
    baseline, except what it covers already and regions labelled otherwise inside them."""
    store = RawStore.from_url(database_url)
    store.create_tables()
    create_label_tables(store.engine)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    land_skab(store, [skab_dir / "valve1" / "0.csv"], t0, "pump-001")
    land_skab(store, [skab_dir / "valve1" / "1.csv"], t0, "pump-002")
    at = t0.__add__
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(labels),
            [
                # Overlaps the first-readings baseline (seconds 0-399): only 400-449 are new.
                _label(
                    "pump-001", at(timedelta(seconds=300)), at(timedelta(seconds=449)), "normal", 1
                ),
                # A task's normal verdict with a fault region inside: 1050-1059 stay out.
                _label(
                    "pump-001",
                    at(timedelta(seconds=1000)),
                    at(timedelta(seconds=1099)),
                    "normal",
                    2,
                ),
                _label(
                    "pump-001", at(timedelta(seconds=1050)), at(timedelta(seconds=1059)), "fault", 2
                ),
                # Labelled faults of the sensor and another sensor's normal change nothing.
                _label(
                    "pump-001", at(timedelta(seconds=600)), at(timedelta(seconds=700)), "fault", 3
                ),
                _label(
                    "pump-002", at(timedelta(seconds=0)), at(timedelta(seconds=199)), "normal", 4
                ),
            ],
        )
    store.engine.dispose()
    env = {
        "DATABASE_URL": database_url,
        "DRIFTLINE_DATA_DIR": str(tmp_path / "data"),
        "DRIFTLINE_BASELINE_READINGS": "400",
    }
    runner = CliRunner()
    raw = pd.read_csv(skab_dir / "valve1" / "0.csv", sep=";")
    measurements = list(raw.columns[1:9])
    values = raw[measurements].to_numpy()
    baselines = BaselineStore(tmp_path / "data" / "baselines")

    assert runner.invoke(app, ["baseline", "set", "pump-001"], env=env).exit_code == 0
    first = baselines.get("pump-001")
    assert first is not None and first.count == 400

    extend = ["baseline", "set", "pump-001", "--from-labels", "--max-added", "1000"]
    result = runner.invoke(app, extend, env=env)
    assert result.exit_code == 0, result.output
    assert "140 of 240 labelled normal added, 2 periods" in result.output
    extended = baselines.get("pump-001")
    assert extended is not None and extended.source == "labelled-normal"
    assert extended.count == 400 + 50 + 90
    expected = np.vstack([values[:450], values[1000:1050], values[1060:1100]])
    np.testing.assert_allclose(extended.values(), expected)
    assert (extended.start, extended.end) == (t0, t0 + timedelta(seconds=1099))
    # The spans it covers: its first readings and the runs labelled normal (the fault inside
    # the second task splits it).
    assert extended.spans() == [
        (pd.Timestamp(at(timedelta(seconds=a))), pd.Timestamp(at(timedelta(seconds=b))))
        for a, b in [(0, 449), (1000, 1049), (1060, 1099)]
    ]
    np.testing.assert_allclose(extended.mean, expected.mean(axis=0))
    assert (baselines.directory / f"pump-001.{first.version}.json").exists()

    # Applied again: nothing new, the baseline stays.
    result = runner.invoke(app, extend, env=env)
    assert result.exit_code == 0 and "unchanged" in result.output
    assert baselines.get("pump-001") == extended

    # A period labelled normal later, between spans it covers, is added too.
    gap = _label("pump-001", at(timedelta(seconds=500)), at(timedelta(seconds=549)), "normal", 5)
    store = RawStore.from_url(database_url)
    with store.engine.begin() as conn:
        conn.execute(sa.insert(labels), [gap])
    store.engine.dispose()
    result = runner.invoke(app, extend, env=env)
    assert result.exit_code == 0 and "50 of 290 labelled normal added, 3 periods" in result.output
    later = baselines.get("pump-001")
    assert later is not None and later.count == extended.count + 50
    np.testing.assert_allclose(later.values(), np.vstack([expected, values[500:550]]))
    assert len(later.spans()) == 4

    # No baseline yet: the labelled normal readings make one, at most --max-added of them.
    result = runner.invoke(
        app, ["baseline", "set", "pump-002", "--from-labels", "--max-added", "10"], env=env
    )
    assert result.exit_code == 0, result.output
    made = baselines.get("pump-002")
    assert made is not None and made.count == 10 and made.source == "labelled-normal"
    other = pd.read_csv(skab_dir / "valve1" / "1.csv", sep=";")[measurements].to_numpy()
    np.testing.assert_allclose(made.values(), other[np.linspace(0, 199, 10).round().astype(int)])

    result = runner.invoke(app, ["baseline", "set", "pump-003", "--from-labels"], env=env)
    assert result.exit_code == 1 and "no period labelled normal" in result.output
    result = runner.invoke(app, ["baseline", "set", "pump-003", "--max-added", "5"], env=env)
    assert result.exit_code != 0 and "--max-added goes with --from-labels" in result.output
    result = runner.invoke(
        app, ["baseline", "set", "pump-001", "--from-labels", "--from", t0.isoformat()], env=env
    )
    assert result.exit_code != 0
