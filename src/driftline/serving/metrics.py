"""Prometheus metrics of the serving path that BentoML does not export already.

BentoML's own /metrics has, per endpoint, ``bentoml_service_request_duration_seconds``
(request latency), ``bentoml_service_request_total`` (by status code),
``bentoml_service_request_in_progress`` and ``bentoml_service_adaptive_batch_size`` (the
batches the dispatcher formed). What is Driftline's alone is declared here, in the style of
``driftline.metrics``. BentoML runs its workers in Prometheus multiprocess mode, hence the
gauge's ``multiprocess_mode``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

predictions = Counter(
    "driftline_serving_predictions_total",
    "Readings answered, by predicted label (pending: no score yet).",
    ["label"],
)
baseline_pending = Counter(
    "driftline_serving_baseline_pending_total",
    "Readings answered baseline: pending (no score): their sensor has no complete baseline yet.",
)
baselines_completed = Counter(
    "driftline_serving_baselines_completed_total",
    "Commissioning baselines serving completed, by outcome: stored (its own), existing (one "
    "stored first, by the drift service or another replica, is used), error (not stored).",
    ["outcome"],
)
readings_rejected = Counter(
    "driftline_serving_readings_rejected_total",
    "Readings of rejected requests, by failed check.",
    ["check"],
)
unauthorized = Counter(
    "driftline_serving_unauthorized_total",
    "Requests refused with 401: no API key, or a wrong one (DRIFTLINE_SERVING_API_KEY).",
)
unavailable = Counter(
    "driftline_serving_unavailable_total",
    "Prediction requests answered 503: no champion loaded yet, or the shared history away.",
)
readings_per_request = Histogram(
    "driftline_serving_request_size_readings",
    "Readings per prediction request.",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
scoring_batch_size = Histogram(
    "driftline_serving_batch_size_readings",
    "Readings per model call (one adaptive batch, possibly of several requests).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
model_version = Gauge(
    "driftline_serving_model_version",
    "Registry version of the model in service (0: none loaded yet).",
    ["model_name"],
    multiprocess_mode="livemostrecent",
)
model_swaps = Counter(
    "driftline_serving_model_swaps_total",
    "Champion models loaded and swapped in, by outcome.",
    ["outcome"],
)
predictions_published = Counter(
    "driftline_serving_predictions_published_total",
    "Predictions handed to the producer of the predictions topic.",
)
predictions_dropped = Counter(
    "driftline_serving_predictions_dropped_total",
    "Predictions not published (queue full, or the send failed).",
)
