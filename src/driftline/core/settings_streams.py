"""Settings of the streaming side: Kafka, the stores, micro-batches, drift, the trigger."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from driftline.core.settings_env import DEFAULT_PROFILE
from driftline.core.settings_env import env_alias as _env


class StreamSettings(BaseSettings):
    # --- Kafka -------------------------------------------------------------------------------
    kafka_bootstrap_servers: str | None = Field(
        None,
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port] of the Kafka cluster. Unset: local commands start "
        "the embedded broker.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL")
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validation_alias=_env("KAFKA_SASL_MECHANISM")
    )
    kafka_sasl_username: str | None = Field(None, validation_alias=_env("KAFKA_SASL_USERNAME"))
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias=_env("KAFKA_SASL_PASSWORD")
    )
    kafka_ssl_cafile: Path | None = Field(None, validation_alias=_env("KAFKA_SSL_CAFILE"))
    kafka_exactly_once: bool = Field(
        False,
        description="Idempotent producers and read_committed consumers (a real Kafka only: the "
        "embedded broker rejects idempotent producers). Sinks are idempotent either way.",
    )
    kafka_session_timeout_ms: int = Field(
        10_000,
        ge=1000,
        description="Consumer group session timeout. Real Kafka needs >= 6000 by default; the "
        "embedded broker holds each group join for half of it, so local runs use 2000.",
    )
    simulator_linger_ms: int = Field(
        100,
        ge=0,
        description="How long readings of a paced simulation (driftline up --demo, driftline "
        "simulate --rate) wait to share a Kafka batch, as a gateway batches them.",
    )
    topic_prefix: str = Field("driftline", description="Prefix of every topic name.")
    topic_partitions: int = Field(4, ge=1, description="Partitions of topics Driftline creates.")
    consumer_group_prefix: str = Field("driftline", description="Prefix of consumer group ids.")

    # --- Storage -----------------------------------------------------------------------------
    data_dir: Path = Field(
        Path(".driftline"), description="Where local state lives (SQLite, references, logs)."
    )
    database_url: SecretStr | None = Field(
        None,
        validation_alias=_env("DATABASE_URL"),
        description="SQLAlchemy URL of the raw store, e.g. mysql+pymysql://user:pw@host/db. "
        "Unset: SQLite in the data directory.",
    )
    database_readonly_url: SecretStr | None = Field(
        None,
        description="URL of a read-only database user for the pipeline's reads (recommended: a "
        "read-only session alone can be switched back). Unset: DATABASE_URL, read-only session.",
    )
    profile_path: Path = Field(
        DEFAULT_PROFILE, description="Schema profile: measurements, units, ranges, sensors."
    )
    raw_store_bulk_load: bool = Field(
        True,
        description="ingest writes each batch as the database loads it natively: LOAD DATA "
        "LOCAL INFILE on MariaDB/MySQL (the server's local_infile must be ON, else INSERT, "
        "with a log line), executemany on SQLite. Off: row-by-row INSERT (the old path).",
    )
    ingest_batches_in_flight: int = Field(
        2,
        ge=1,
        le=8,
        description="Batches ingest handles at once: with 2, the next batch is fetched and "
        "decoded while the database loads the previous one (on a second connection). Offsets "
        "are still committed in order, each batch's only after its rows are.",
    )
    validator_batches_in_flight: int = Field(
        2,
        ge=1,
        le=8,
        description="Batches the validator handles at once: with 2, the next batch is "
        "validated while the broker acknowledges the previous one's records, and published "
        "only once the previous one is done, so each sensor's readings keep their order. "
        "Offsets are still committed in order, each batch's only after all its records are "
        "acknowledged.",
    )

    # --- Micro-batches -----------------------------------------------------------------------
    batch_max_records: int = Field(
        10_000,
        ge=1,
        description="Most messages in one micro-batch. The validator's schema run costs a few "
        "ms per batch that has invalid readings, so large batches pay off under load; when "
        "the stream is slow, batch_max_wait_ms bounds them.",
    )
    batch_max_wait_ms: int = Field(250, ge=1, description="Longest wait to fill a micro-batch.")
    max_message_bytes: int = Field(
        64 * 1024, ge=256, description="Larger messages are dead-lettered unparsed."
    )
    dedup_capacity: int = Field(
        500_000, ge=0, description="Reading ids the validator remembers to spot duplicates."
    )

    # --- Drift -------------------------------------------------------------------------------
    drift_window_size: int = Field(300, ge=10, description="Readings per sensor window.")
    drift_window_seconds: float = Field(
        900.0, gt=0, description="A window closes after this much event time even if not full."
    )
    drift_min_window_size: int = Field(
        60, ge=2, description="Windows closed by time with fewer readings are not tested."
    )
    drift_restart_skew_seconds: float = Field(
        60.0,
        ge=0,
        description="At a restart, drift reads its own events back to this long before the "
        "first reading it replays was published (room for clocks apart).",
    )
    drift_stattest: str = Field(
        "wasserstein", description="Evidently stattest used per feature (e.g. wasserstein, ks)."
    )
    drift_stattest_threshold: float = Field(
        2.0, gt=0, description="Threshold of the stattest (distance, or p-value for tests)."
    )
    drift_share_threshold: float = Field(
        0.375, gt=0, le=1, description="A window is drifted when this share of features drifted."
    )
    reference_path: Path | None = Field(
        None,
        description="Reference data (CSV or Parquet) until a model is promoted. Unset: "
        "<data_dir>/reference.parquet, built by 'driftline reference build'.",
    )

    # --- Retrain trigger ---------------------------------------------------------------------
    trigger_share_threshold: float = Field(
        0.375, gt=0, le=1, description="Drift share a window needs to count toward a trigger."
    )
    trigger_consecutive_windows: int = Field(
        3, ge=1, description="Consecutive drifted windows of one sensor that make it drifted."
    )
    trigger_min_sensors: int = Field(
        1, ge=1, description="Drifted sensors needed at once to fire a retraining."
    )
    trigger_cooldown_seconds: float = Field(
        3600.0, ge=0, description="No new retraining this long after one fired."
    )
    trigger_max_run_seconds: float = Field(
        7200.0, gt=0, description="A retraining in flight longer than this counts as stuck."
    )
    trigger_retry_attempts: int = Field(
        2,
        ge=0,
        description="Times a retraining that failed to launch or failed is launched again "
        "(0: never), for the same drift episode.",
    )
    trigger_retry_backoff_seconds: float = Field(
        60.0,
        ge=0,
        description="Wait before the first relaunch of a failed retraining; doubles each time.",
    )
    trigger_retry_max_age_seconds: float = Field(
        3600.0,
        ge=0,
        description="A restarted trigger resumes the relaunch of a run that failed before it "
        "only if the run failed less than this long ago (default: the cooldown's default); an "
        "older failure is not relaunched, a decision says why, and drift fires anew.",
    )
    drift_basis: Literal["baseline", "raw"] = Field(
        "baseline",
        description="baseline: each window, and each reference sensor, relative to its own "
        "sensor's baseline ((x - mean) / std); a sensor without one is not compared (pending). "
        "raw: measurements compared with the reference as they are.",
    )
    drift_baseline_refresh_seconds: float = Field(
        10.0,
        gt=0,
        description="How long the drift service uses a sensor's baseline (or its absence) as "
        "read from the baseline store before it looks again (a baseline an operator set, or "
        "serving completed, is used from then on).",
    )
