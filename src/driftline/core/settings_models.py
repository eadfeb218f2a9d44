"""Settings of the model side: the retraining pipeline and serving."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from driftline import __version__
from driftline.core.settings_env import env_alias as _env


class ModelSettings(BaseSettings):
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
    serving_trace_predictions: bool = Field(
        False,
        description="Make an OpenTelemetry span of each POST /predict (BentoML's tracing; its "
        "exporter is set in BentoML's configuration). Off by default: nothing exports them "
        "unless configured, and the spans cost about a sixth of serving's CPU at one reading "
        "a request (docs/benchmarks.md, issue 20).",
    )
