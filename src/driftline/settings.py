"""One settings object per process, read once from the environment and passed down.

Standard names (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``) are read as they are; every other
setting is ``DRIFTLINE_<NAME>``. Each field's description is its documentation
(``driftline settings`` prints them all).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_PROFILE = PACKAGE_DIR / "profiles" / "skab_pump.yaml"


def _env(name: str) -> AliasChoices:
    # Accept the plain env name and the field name, so Settings(field=...) works in code.
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_", frozen=True, extra="ignore", populate_by_name=True
    )

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

    # --- Retraining pipeline -------------------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=_env("MLFLOW_TRACKING_URI"),
        description="MLflow tracking server or store. Unset: SQLite store in the data directory.",
        repr=False,  # a database store's URL holds its password (`driftline settings` masks it)
    )
    model_name: str = Field("driftline-anomaly", description="Registered model name in MLflow.")
    bentoml_home: Path | None = Field(
        None,
        validation_alias=_env("BENTOML_HOME"),
        description="BentoML model store that promotions import into. Unset: <data_dir>/bentoml.",
    )
    data_repo_path: Path | None = Field(
        None, description="Git + DVC repository of dataset versions. Unset: <data_dir>/datarepo."
    )
    dvc_remote_url: str | None = Field(
        None,
        description="DVC remote (a directory, or s3://bucket/path with AWS_* credentials in "
        "the environment, AWS_ENDPOINT_URL for MinIO). Unset: <data_dir>/dvc-remote.",
    )
    feature_window: int = Field(
        30, ge=2, description="Readings per sensor in the rolling statistics used as features."
    )
    tune_samples: int = Field(8, ge=1, description="Hyperparameter trials of the tune step.")
    baseline_readings: int = Field(
        400,
        ge=2,
        description="Valid readings of a sensor's commissioning period that make its baseline "
        "(its own normal, which the anomaly models judge readings against); SKAB's protocol "
        "uses 400.",
    )
    automl_budget_seconds: float = Field(
        60.0,
        gt=0,
        description="Time budget of the AutoML search over model families, feature windows, "
        "parameters and the decision threshold.",
    )
    ray_address: str | None = Field(
        None,
        validation_alias=_env("RAY_ADDRESS"),
        description="Ray cluster for tuning. Unset: a local Ray on this machine.",
    )
    promotion_metric: Literal["f1", "recall_at_precision", "pr_auc"] = Field(
        "f1", description="Business metric a challenger must beat the champion on."
    )
    promotion_min_precision: float = Field(
        0.8, ge=0, le=1, description="Precision floor of recall_at_precision."
    )
    promotion_min_gain: float = Field(
        0.0, ge=0, description="How much the challenger must beat the champion by."
    )
    retrain_launcher: Literal["kfp-local", "kfp", "record"] = Field(
        "kfp-local",
        description="What a fired trigger launches: the pipeline with KFP's local runner, on "
        "the KFP cluster at DRIFTLINE_KFP_HOST, or nothing but a record.",
    )
    retrain_skip_steps: str = Field(
        "", description="Comma-separated pipeline steps a triggered run skips (e.g. tune)."
    )
    retrain_lookback_seconds: float | None = Field(
        None,
        ge=0,
        description="A triggered run trains on readings from this long before the drift "
        "episode on (0: the episode only, the new regime). Unset: all readings before it.",
    )
    kfp_host: str | None = Field(
        None, description="KFP API endpoint. Unset: pipelines run with KFP's local runner."
    )
    image_registry: str = Field(
        "", description="Registry prefix of component images, e.g. harbor.example.com/driftline."
    )
    image_tag: str = Field(
        __version__, description="Tag of component images on a cluster (the release version)."
    )

    # --- Serving -----------------------------------------------------------------------------
    serving_threshold: float = Field(
        0.5, gt=0, lt=1, description="Anomaly probability from which a reading is labelled 1."
    )
    serving_poll_seconds: float = Field(
        30.0, gt=0, description="How often serving asks the registry for the champion alias."
    )
    serving_adaptive_batching: bool = Field(
        True, description="Score concurrent requests together (BentoML adaptive batching)."
    )
    serving_max_batch_size: int = Field(
        1024, ge=1, description="Most readings the scorer takes in one adaptive batch."
    )
    serving_max_latency_ms: int = Field(
        5000,
        ge=1,
        description="Adaptive batching's deadline: a request BentoML predicts cannot be scored "
        "by then is refused with 503 (shedding), so this bounds latency under overload only. "
        "Above the latency of a full queue (64 requests of 100 readings: 1-3 s on 2 busy "
        "cores), so a steady load is served, not shed (docs/benchmarks.md, issue 20).",
    )
    serving_max_readings: int = Field(1000, ge=1, description="Most readings in one request.")
    serving_access_log: bool = Field(False, description="Log a line per serving request.")
    serving_publish_predictions: bool = Field(
        False, description="Publish every prediction to the predictions topic for monitoring."
    )
    serving_port: int = Field(3000, ge=1, le=65535, description="Port of `driftline serve`.")
    serving_api_key: SecretStr | None = Field(
        None,
        description="When set, every serving route but /livez, /readyz, /healthz, /metrics and "
        "/docs.json needs 'Authorization: Bearer <key>' or 'X-API-Key: <key>' (else 401).",
    )
    serving_history_url: SecretStr | None = Field(
        None,
        description="Redis URL (redis://[:password@]host:6379/0) of the sensor histories "
        "serving computes features from, shared by every serving replica. Unset: each process "
        "holds its own in memory (one replica only: a sensor's requests must all reach it).",
    )
    serving_history_ttl_seconds: int = Field(
        86_400,
        ge=0,
        description="A sensor unseen this long is forgotten by the Redis history (0: never).",
    )

    # --- Operations --------------------------------------------------------------------------
    metrics_port: int | None = Field(
        None,
        description="Port of the Prometheus /metrics endpoint, also serving /livez and /readyz "
        "(unset: not served).",
    )
    metrics_host: str = Field(
        "0.0.0.0",  # nosec B104  # in a container the probes and Prometheus come from outside
        description="Address the metrics port binds to: all interfaces, for containers (where "
        "Prometheus and the kubelet's probes connect from outside); 127.0.0.1 on a shared host.",
    )
    health_check_seconds: float = Field(
        5.0,
        gt=0,
        description="How often a service checks Kafka and its database for /readyz; a check "
        "older than three intervals counts as failed.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    serving_url: str | None = Field(
        None,
        description="Base URL of a running serving service (e.g. http://serving:3000) that "
        "'driftline doctor' checks. Unset: not checked.",
    )
    record_retry_attempts: int = Field(
        3,
        ge=1,
        description="Times a consumer retries a batch (then each of its records) that fails "
        "while every dependency answers, before the failing record is dead-lettered "
        "(internal_error).",
    )
    stall_retries: int = Field(
        5,
        ge=1,
        description="Failed attempts at one batch, whatever the cause, after which the service "
        "reports itself stalled: not ready, driftline_stream_stalled 1.",
    )

    # --- Supervision (`driftline up`) ---------------------------------------------------------
    supervisor_max_restarts: int = Field(
        5,
        ge=0,
        description="Restarts of one service `driftline up` allows within "
        "DRIFTLINE_SUPERVISOR_RESTART_WINDOW_SECONDS; one more exit and the service is down "
        "for good: logged as an error, marked in the live view, and `up` stops with exit code 3.",
    )
    supervisor_restart_window_seconds: float = Field(
        300.0, gt=0, description="The sliding window the restart budget counts restarts in."
    )
    supervisor_backoff_max_seconds: float = Field(
        30.0,
        ge=0,
        description="Longest wait before restarting a service that keeps exiting (the wait "
        "doubles from 1 s with each restart inside the window).",
    )

    # --- MQTT gateway ------------------------------------------------------------------------
    mqtt_url: str | None = Field(
        None,
        description="MQTT broker the gateway subscribes to: mqtt://host:1883 or mqtts://host:8883 "
        "(TLS). Unset: no gateway ('driftline up' starts one when it is set).",
    )
    mqtt_username: str | None = Field(None, description="MQTT user name (unset: anonymous).")
    mqtt_password: SecretStr | None = Field(
        None, description="MQTT password (a secret: never logged)."
    )
    mqtt_ca_file: Path | None = Field(
        None, description="CA bundle that signs the MQTT broker's certificate (mqtts://)."
    )
    mqtt_client_id: str = Field(
        "driftline-mqtt-gateway",
        description="Fixed MQTT client id: the broker keeps the session (subscription and "
        "unacknowledged messages) under it while the gateway restarts. Unique per replica.",
    )
    mqtt_topic_filter: str = Field(
        "sensors/+/readings", description="MQTT topic filter the gateway subscribes to."
    )
    mqtt_topic_pattern: str = Field(
        "sensors/{sensor_id}/readings",
        description="Where the sensor id sits in a topic: '{sensor_id}' is one topic level, '+' "
        "any one level, '#' (last) the rest. A payload's own sensor_id wins.",
    )
    mqtt_shared_group: str | None = Field(
        "driftline",
        description="Shared subscription group ($share/<group>/<filter>): replicas of the "
        "gateway split the messages. Unset: a plain subscription (every replica gets all).",
    )
    mqtt_session_expiry_seconds: int = Field(
        86_400,
        ge=1,
        description="How long the broker keeps the gateway's session, and queues its messages, "
        "while it is disconnected.",
    )
    mqtt_receive_maximum: int = Field(
        5000,
        ge=1,
        le=65535,
        description="Most messages the broker sends the gateway before their acknowledgement: "
        "the gateway's in-flight bound (MQTT 5 Receive Maximum).",
    )
    mqtt_keepalive_seconds: int = Field(30, ge=5, description="MQTT keep-alive interval.")

    # --- Labels (Label Studio) -----------------------------------------------------------------
    label_studio_url: str | None = Field(
        None,
        description="Base URL of Label Studio (e.g. http://label-studio:8080). Unset: no "
        "labeling; 'driftline up' sets it when it starts Label Studio.",
    )
    label_studio_token: SecretStr | None = Field(
        None,
        description="Label Studio legacy API token of the user Driftline acts as "
        "('Authorization: Token ...'; legacy tokens must be enabled in the organization).",
    )
    label_studio_project: str = Field(
        "Driftline sensor labels", description="Title of the Label Studio project Driftline keeps."
    )
    label_studio_start: bool = Field(
        True,
        description="'driftline up' starts Label Studio when it is installed "
        "(scripts/label-studio.sh makes .labelstudio-venv); false: never.",
    )
    label_studio_port: int = Field(
        8080, ge=1, le=65535, description="Port of the Label Studio 'driftline up' starts."
    )
    label_studio_username: str = Field(
        "admin@driftline.local", description="User 'driftline up' creates in its Label Studio."
    )
    label_studio_password: SecretStr | None = Field(
        None,
        description="Password of that user. Unset: generated once and kept in the data directory.",
    )
    labels_sync_seconds: float = Field(
        30.0, gt=0, description="How often the labeler pushes tasks and pulls annotations."
    )
    labels_webhook_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port the labeler receives Label Studio's annotation webhooks on (unset: "
        "annotations come by the periodic pull only).",
    )
    labels_webhook_url: str | None = Field(
        None,
        description="URL Label Studio posts annotations to (the labeler's webhook as Label "
        "Studio reaches it, e.g. http://labeler:9102/webhook). Unset: no webhook registered.",
    )
    labels_uncertainty_margin: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="A prediction this close to serving_threshold is uncertain: a labeling "
        "task for active learning.",
    )
    labels_uncertain_per_sensor_per_hour: int = Field(
        2, ge=0, description="Most uncertain-prediction tasks per sensor per hour (event time)."
    )
    labels_uncertain_per_hour: int = Field(
        20, ge=0, description="Most uncertain-prediction tasks per hour in all (event time)."
    )
    labels_episode_gap_seconds: float = Field(
        300.0, gt=0, description="A pause this long between anomalous predictions ends an episode."
    )
    labels_episode_max_seconds: float = Field(
        3600.0, gt=0, description="Longest predicted anomaly episode one task covers."
    )
    labels_context_seconds: float = Field(
        120.0, ge=0, description="Readings shown before and after a task's episode."
    )
    labels_max_task_readings: int = Field(
        5000, ge=10, description="Most readings in one task (the newest are kept)."
    )
    labels_performance_window: int = Field(
        500, ge=1, description="Labelled readings per model version the labelled scores cover."
    )
    trigger_labelled_f1_threshold: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Retrain when the production model's labelled F1 falls below this.",
    )
    trigger_labelled_min_readings: int = Field(
        50, ge=1, description="Labelled readings needed before the labelled F1 rule may fire."
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'driftline.db').resolve()}"

    @property
    def resolved_readonly_url(self) -> str:
        if self.database_readonly_url is not None:
            return self.database_readonly_url.get_secret_value()
        return self.resolved_database_url

    @property
    def resolved_mlflow_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def resolved_bentoml_home(self) -> Path:
        return (self.bentoml_home or self.data_dir / "bentoml").resolve()

    @property
    def resolved_data_repo(self) -> Path:
        return (self.data_repo_path or self.data_dir / "datarepo").resolve()

    @property
    def resolved_dvc_remote(self) -> str:
        return self.dvc_remote_url or str((self.data_dir / "dvc-remote").resolve())

    @property
    def resolved_reference_path(self) -> Path:
        return self.reference_path or self.data_dir / "reference.parquet"

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables a child process reads them from."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[env_name(name)] = str(value)
        # Stores with defaults derived from the data directory: a child must use the same
        # ones as its parent, not whatever its inherited environment says.
        env["MLFLOW_TRACKING_URI"] = self.resolved_mlflow_uri
        env["BENTOML_HOME"] = str(self.resolved_bentoml_home)
        return env

    def group_id(self, service: str) -> str:
        return f"{self.consumer_group_prefix}-{service}"


def env_name(field: str) -> str:
    """The environment variable a setting is read from."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"DRIFTLINE_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Build the process's settings from the environment, with explicit overrides on top."""
    # Keyword values of any type: pydantic validates each against its field.
    return Settings(**overrides)  # type: ignore[arg-type]
