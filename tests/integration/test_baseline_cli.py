"""``driftline baseline set/show`` against a real SQLite raw store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from driftline.anomaly.baseline_store import BaselineStore
from driftline.cli import app
from driftline.raw_store import RawStore
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
