"""`driftline doctor` against real dependencies: the embedded broker, MariaDB and SQLite answer;
a closed port, a wrong password and an unknown host do not, and each says so in its row."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from typer.testing import CliRunner

from driftline.cli.doctor import check_database, check_kafka, render, run_checks
from driftline.cli.main import app
from driftline.core.settings import Settings
from driftline.platform.broker import free_port


def test_everything_reachable(kafka_bootstrap: str, mariadb_url: str, tmp_path: Path) -> None:
    mlflow_db = tmp_path / "mlflow.db"
    sa.create_engine(f"sqlite:///{mlflow_db}").connect().close()
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=SecretStr(mariadb_url),
        mlflow_tracking_uri=f"sqlite:///{mlflow_db}",
        data_dir=tmp_path,
    )
    results = {r.dependency: r for r in run_checks(settings)}
    assert {name: r.reachable for name, r in results.items()} == {
        "Kafka": "yes",
        "database": "yes",
        "MLflow": "yes",
        "serving": "not set",
    }
    assert results["database"].detail == "mysql"


def test_unreachable_dependencies_are_named(mariadb_url: str, tmp_path: Path) -> None:
    closed = free_port()
    wrong_password = mariadb_url.replace("root@", "root:wrong@", 1)
    settings = Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{closed}",
        database_url=SecretStr(wrong_password),
        mlflow_tracking_uri=f"http://127.0.0.1:{closed}",
        serving_url=f"http://127.0.0.1:{closed}",
        data_dir=tmp_path,
    )
    results = {r.dependency: r for r in run_checks(settings)}
    assert {name: r.reachable for name, r in results.items()} == {
        "Kafka": "no",
        "database": "no",
        "MLflow": "no",
        "serving": "no",
    }
    assert "wrong" not in render(list(results.values())), "a password in the table"
    assert "Access denied" in results["database"].detail


def test_the_command_prints_a_table_and_exits_1_when_one_is_down(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("DRIFTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DRIFTLINE_SERVING_URL", f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1, result.output
    header, *rows = result.output.strip().splitlines()
    assert header.split()[:3] == ["dependency", "where", "reachable"]
    reachable = {row.split()[0]: row for row in rows}
    assert " yes " in reachable["Kafka"] and kafka_bootstrap in reachable["Kafka"]
    assert " no " in reachable["serving"]


def test_a_single_check_never_raises(tmp_path: Path) -> None:
    assert (
        check_kafka(Settings(kafka_bootstrap_servers="no-such-host.invalid:9092")).reachable == "no"
    )
    assert (
        check_database("database", "mysql+pymysql://u:p@no-such-host.invalid/x").reachable == "no"
    )
