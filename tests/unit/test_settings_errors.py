"""A bad setting is refused at start in one line that names its environment variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from driftline import __version__
from driftline.core.settings import Settings
from driftline.core.settings_errors import describe_validation_error, setting_problems

DRIFTLINE = Path(sys.executable).parent / "driftline"


def run_cli(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "KAFKA_"))}
    base.pop("DATABASE_URL", None)
    base["DRIFTLINE_DATA_DIR"] = str(tmp_path)
    return subprocess.run(
        [str(DRIFTLINE), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def test_a_garbage_database_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = run_cli(["ingest"], {"DATABASE_URL": "garbage"}, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "DATABASE_URL" in lines[0] and "not a database URL" in lines[0]
    assert "Traceback" not in proc.stderr and "garbage" not in proc.stderr
    assert proc.stdout == ""


def test_a_value_of_the_wrong_type_names_the_variable(tmp_path: Path) -> None:
    proc = run_cli(["validator"], {"DRIFTLINE_BATCH_MAX_RECORDS": "many"}, tmp_path)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("driftline: bad setting DRIFTLINE_BATCH_MAX_RECORDS: ")
    assert "'many'" in line


def test_version(tmp_path: Path) -> None:
    proc = run_cli(["--version"], {}, tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"driftline {__version__}"


def errors_of(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    return describe_validation_error(caught.value)


def test_validation_errors_name_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = errors_of(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL="TLS",
        DRIFTLINE_DRIFT_WINDOW_SIZE="3",
        DRIFTLINE_SERVING_PORT="http",
    )
    assert [line.split(":")[0] for line in lines] == [
        "KAFKA_SECURITY_PROTOCOL",
        "DRIFTLINE_DRIFT_WINDOW_SIZE",
        "DRIFTLINE_SERVING_PORT",
    ]
    assert "'TLS'" in lines[0] and "greater than or equal to 10" in lines[1]


def test_secret_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A URL may hold a password: say what is wrong, not what it was.
    settings = Settings(database_url=SecretStr("mysql://u:hunter2@db:notaport/x"))
    problems = setting_problems(settings)
    assert len(problems) == 1 and problems[0].startswith("DATABASE_URL: ")
    assert "hunter2" not in problems[0]


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"database_url": SecretStr("garbage")}, "DATABASE_URL"),
        ({"database_url": SecretStr("nosuchdb://h/x")}, "DATABASE_URL"),
        ({"database_readonly_url": SecretStr("::")}, "DRIFTLINE_DATABASE_READONLY_URL"),
        ({"kafka_bootstrap_servers": "kafka-1"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"kafka_bootstrap_servers": "kafka-1:9092,kafka-2:x"}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"kafka_security_protocol": "SASL_SSL"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_problems_settings_accept_but_use_would_hit(
    overrides: dict[str, object], variable: str
) -> None:
    problems = setting_problems(Settings(**overrides))  # type: ignore[arg-type]
    assert problems and problems[0].startswith(f"{variable}: "), problems


def test_good_settings_have_no_problems() -> None:
    settings = Settings(
        database_url=SecretStr("mysql+pymysql://u:p@db:3306/driftline"),
        kafka_bootstrap_servers="kafka-1:9092,kafka-2:9092",
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="driftline",
        kafka_sasl_password=SecretStr("x"),
    )
    assert setting_problems(settings) == []
