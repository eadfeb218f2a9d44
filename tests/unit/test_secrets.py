"""Secrets never reach output or logs: not `driftline settings`, not the settings' repr, not a
service's log while it fails to reach its database and Kafka (where URLs get quoted)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from driftline.core.logs import redact
from driftline.core.settings import Settings
from driftline.platform.broker import free_port
from driftline.platform.services import service_script

DB_SECRET = "dbS3cret-4f1e"
SASL_SECRET = "saslS3cret-93ab"
MLFLOW_SECRET = "mlS3cret-77c2"
READONLY_SECRET = "roS3cret-0d5b"
SECRETS = (DB_SECRET, SASL_SECRET, MLFLOW_SECRET, READONLY_SECRET)


def secret_env(tmp_path: Path) -> dict[str, str]:
    """Settings with a password everywhere one can go; nothing listens at their addresses."""
    return {
        "DATABASE_URL": f"mysql+pymysql://driftline:{DB_SECRET}@127.0.0.1:{free_port()}/driftline",
        "DRIFTLINE_DATABASE_READONLY_URL": (
            f"mysql+pymysql://reader:{READONLY_SECRET}@127.0.0.1:{free_port()}/driftline"
        ),
        "MLFLOW_TRACKING_URI": f"mysql+pymysql://mlflow:{MLFLOW_SECRET}@127.0.0.1:1/mlflow",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "driftline",
        "KAFKA_SASL_PASSWORD": SASL_SECRET,
        "DRIFTLINE_DATA_DIR": str(tmp_path / "data"),
        "DRIFTLINE_LOG_LEVEL": "DEBUG",
    }


def assert_no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{leaked} in:\n{text[-3000:]}"


def test_settings_repr_and_str_hide_secrets(tmp_path, monkeypatch) -> None:
    for name, value in secret_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    settings = Settings()  # type: ignore[call-arg]
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == SASL_SECRET
    assert_no_secret(repr(settings) + str(settings))


def test_driftline_settings_prints_no_secret(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "driftline.cli.main", "settings"],
        env={**os.environ, **secret_env(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "KAFKA_SASL_PASSWORD=**********" in done.stdout
    assert "MLFLOW_TRACKING_URI=mysql+pymysql://mlflow:***@127.0.0.1:1/mlflow" in done.stdout
    assert_no_secret(done.stdout + done.stderr)


def test_a_service_failing_to_connect_logs_no_secret(tmp_path) -> None:
    """The trigger at start-up, its database and Kafka away: it logs its retries, with the
    URLs it fails on, at DEBUG; none of it may carry a password."""
    log_path = tmp_path / "trigger.log"
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            [sys.executable, str(service_script("retrain-trigger"))],
            env={**os.environ, **secret_env(tmp_path), "DRIFTLINE_RETRAIN_LAUNCHER": "record"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while log_path.read_text(errors="replace").count("retrying in") < 3:
            assert child.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.2)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)
    text = log_path.read_text(errors="replace")
    assert "creating tables failed" in text
    assert_no_secret(text)


def test_redact_masks_url_passwords_only() -> None:
    assert redact("mysql+pymysql://u:pw@h:3306/db") == "mysql+pymysql://u:***@h:3306/db"
    assert redact("failed on https://a:b@c/d, retrying") == "failed on https://a:***@c/d, retrying"
    for plain in ("http://mlflow:5000", "sqlite:////x/y.db", "s3://bucket/p", "http://user@h/"):
        assert redact(plain) == plain
