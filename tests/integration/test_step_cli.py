"""A pipeline step runs on its own from the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from driftline.cli.main import app
from driftline.store.raw_store import RawStore
from tests.skab import land_skab

pytestmark = pytest.mark.integration


def test_step_preprocess_versions_a_dataset(tmp_path, skab_dir):
    url = f"sqlite:///{tmp_path / 'raw.db'}"
    store = RawStore.from_url(url)
    store.create_tables()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    end = land_skab(store, [skab_dir / "valve1" / "0.csv"], t0, "pump-001")
    store.engine.dispose()
    env = {"DATABASE_URL": url, "DRIFTLINE_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(
        app,
        [
            "step",
            "preprocess",
            "--tag",
            "cli-v1",
            "--start",
            t0.isoformat(),
            "--end",
            end.isoformat(),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output[result.output.index("{") :])
    assert out["tag"] == "cli-v1"
    assert out["rows"] > 1000 and out["rows_invalid"] == 0
    assert len(out["dvc_md5"]) == 32
