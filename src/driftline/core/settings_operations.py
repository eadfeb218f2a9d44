"""Settings of operations: metrics and health, `driftline up`'s supervision, MQTT, labels."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class OperationSettings(BaseSettings):
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
    consumer_stuck_seconds: float = Field(
        60.0,
        gt=0,
        description="A service whose Kafka consumer receives nothing for this long while "
        "records wait on its partitions closes that consumer and opens a new one (a client "
        "stuck after a broker outage); counted in driftline_consumer_restarts_total.",
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
    labels_score_streamed: bool = Field(
        True,
        description="The labeler also reads the valid-readings topic and scores every reading "
        "with the champion it loads itself (as serving would), so labelled readings that were "
        "never sent to serving are scored too (a served prediction wins for a reading that was "
        "both). Its model needs the registry (mlflow_tracking_uri). False: served readings only.",
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
    labels_predictions_keep_seconds: float = Field(
        7 * 24 * 3600.0,
        gt=0,
        description="Predictions the labeler keeps for the labelled scores: this long behind the "
        "newest it stored (event time); older ones are dropped.",
    )
