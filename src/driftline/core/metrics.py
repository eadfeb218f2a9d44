"""Every Prometheus metric Driftline exports, declared once.

Names follow ``driftline_<thing>_<unit>``; labels stay low-cardinality (no sensor ids except on
the drift gauges, whose cardinality is the fleet size and which operators ask for by sensor).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

messages_consumed = Counter(
    "driftline_messages_consumed_total", "Messages consumed from Kafka.", ["service", "topic"]
)
records_produced = Counter(
    "driftline_records_produced_total", "Records published to Kafka.", ["service", "topic"]
)
readings_stored = Counter(
    "driftline_readings_stored_total", "Messages offered to the raw store (duplicates included)."
)
readings_valid = Counter("driftline_readings_valid_total", "Readings that passed validation.")
sensor_last_reading = Gauge(
    "driftline_sensor_last_reading_timestamp_seconds",
    "When the validator last passed a reading of each sensor (wall clock, Unix seconds).",
    ["sensor_id"],
)
readings_invalid = Counter(
    "driftline_readings_invalid_total", "Readings dead-lettered, by failed check.", ["check"]
)
batch_seconds = Histogram(
    "driftline_batch_duration_seconds",
    "Time to process one micro-batch, from poll to commit.",
    ["service"],
    buckets=BATCH_BUCKETS,
)
batch_size = Histogram(
    "driftline_batch_size_messages",
    "Messages per micro-batch.",
    ["service"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
consumer_lag = Gauge(
    "driftline_consumer_lag_messages", "Messages behind the log end.", ["service", "topic"]
)
service_errors = Counter(
    "driftline_service_errors_total", "Errors handled by a service, by kind.", ["service", "kind"]
)
drift_windows = Counter(
    "driftline_drift_windows_total", "Windows compared with the reference.", ["drifted"]
)
drift_statistic = Gauge(
    "driftline_drift_statistic", "Latest drift statistic per feature.", ["sensor_id", "feature"]
)
drift_share = Gauge(
    "driftline_drift_share_ratio", "Latest share of drifted features.", ["sensor_id"]
)
reference_rows = Gauge("driftline_reference_rows", "Rows of the reference data in use.")
drift_baseline_pending = Counter(
    "driftline_drift_baseline_pending_total",
    "Windows not compared because their sensor has no complete baseline (baseline basis).",
)
drift_baselines_completed = Counter(
    "driftline_drift_baselines_completed_total",
    "Commissioning baselines the drift service completed, by outcome: stored (its own), "
    "existing (one stored first, by serving, is used), error (not stored).",
    ["outcome"],
)
reference_model_version = Gauge(
    "driftline_reference_model_version",
    "Registry version whose reference data drift compares with (0: the baseline file).",
)
model_promotions = Counter(
    "driftline_model_promotions_total", "Promotions seen on the promotions topic.", ["model_name"]
)
trigger_decisions = Counter(
    "driftline_trigger_decisions_total", "Trigger decisions, by outcome.", ["outcome"]
)
retrains_launched = Counter(
    "driftline_retrains_launched_total", "Retraining runs launched, by launcher.", ["launcher"]
)
retrains_in_flight = Gauge("driftline_retrains_in_flight", "Retraining runs in flight.")
retrain_runs = Counter(
    "driftline_retrain_runs_total", "Retraining runs finished, by outcome.", ["outcome"]
)
retrain_launch_failures = Counter(
    "driftline_retrain_launch_failures_total",
    "Retraining runs that could not be launched, by launcher.",
    ["launcher"],
)
retrain_retries = Counter(
    "driftline_retrain_retries_total",
    "Failed retraining runs launched again, by launcher.",
    ["launcher"],
)
service_ready = Gauge(
    "driftline_service_ready",
    "1 when the service's consumer is assigned and its dependencies answer (its /readyz).",
    ["service"],
)
dependency_failures = Counter(
    "driftline_dependency_failures_total",
    "Failed checks or calls of a service's dependencies (kafka, database).",
    ["service", "dependency"],
)

stream_stalled = Gauge(
    "driftline_stream_stalled",
    "1 while the service's consumer loop is stuck on one batch that keeps failing.",
    ["service"],
)
consumer_restarts = Counter(
    "driftline_consumer_restarts_total",
    "Kafka consumers a service replaced because they received nothing while records waited.",
    ["service"],
)
batch_retries = Counter(
    "driftline_batch_retries_total",
    "Failed attempts at handling a batch, by cause (dependency: one was away; record: not).",
    ["service", "cause"],
)
poison_records = Counter(
    "driftline_poison_records_total",
    "Records dead-lettered by the consumer loop's error policy after handling them kept failing.",
    ["service"],
)

mqtt_received = Counter(
    "driftline_mqtt_messages_received_total", "Messages the MQTT gateway received."
)
mqtt_forwarded = Counter(
    "driftline_mqtt_messages_forwarded_total",
    "MQTT messages published to the raw topic, then acknowledged to the MQTT broker.",
)
mqtt_rejected = Counter(
    "driftline_mqtt_messages_rejected_total",
    "MQTT messages the gateway dead-lettered itself (then acknowledged), by failed check.",
    ["check"],
)
mqtt_failed = Counter(
    "driftline_mqtt_produce_failures_total",
    "Failed attempts to publish a batch of MQTT messages to Kafka (retried), by error kind.",
    ["kind"],
)
mqtt_in_flight = Gauge(
    "driftline_mqtt_messages_in_flight",
    "MQTT messages received and not acknowledged yet (waiting for Kafka).",
)
mqtt_ack_lag = Histogram(
    "driftline_mqtt_ack_lag_seconds",
    "Time from receiving an MQTT message to acknowledging it (after Kafka acknowledged).",
    buckets=BATCH_BUCKETS,
)
mqtt_connected = Gauge("driftline_mqtt_connected", "1 while the gateway's MQTT session is up.")

# --- Labels (Label Studio) ---------------------------------------------------------------------
label_tasks_created = Counter(
    "driftline_label_tasks_created_total",
    "Labeling tasks created in Label Studio, by kind.",
    ["kind"],
)
labels_recorded = Counter(
    "driftline_labels_recorded_total",
    "Operator labels stored (new rows only), by label and how the annotation came.",
    ["label", "source"],
)
annotations_rejected = Counter(
    "driftline_annotations_rejected_total",
    "Annotations that could not become labels (retried next pass), by failed check.",
    ["check"],
)
label_sync_failures = Counter(
    "driftline_label_sync_failures_total",
    "Label sync passes that failed, by what failed (label_studio, database, kafka).",
    ["dependency"],
)
label_sync_last_success = Gauge(
    "driftline_label_sync_last_success_timestamp_seconds",
    "When a label sync pass last completed (Unix seconds).",
)
labelled_readings = Gauge(
    "driftline_labelled_readings",
    "Labelled readings the labelled scores of each model version cover.",
    ["model_version"],
)
labelled_readings_by_source = Gauge(
    "driftline_labelled_readings_by_source",
    "Of those, how many were served (serving's answer) and how many streamed (scored by the "
    "labeler from the valid-readings topic), per model version.",
    ["model_version", "source"],
)
streamed_readings = Counter(
    "driftline_labels_streamed_readings_total",
    "Readings of the valid-readings topic the labeler scored with the champion, by outcome "
    "(scored, baseline_pending: no score yet, no_model: no champion loaded).",
    ["outcome"],
)
labelled_precision = Gauge(
    "driftline_labelled_precision_ratio",
    "Precision of 'fault' against operators' labels, per model version (rolling).",
    ["model_version"],
)
labelled_recall = Gauge(
    "driftline_labelled_recall_ratio",
    "Recall of 'fault' against operators' labels, per model version (rolling).",
    ["model_version"],
)
labelled_f1 = Gauge(
    "driftline_labelled_f1_ratio",
    "F1 of 'fault' against operators' labels, per model version (rolling).",
    ["model_version"],
)
labelled_decisions = Counter(
    "driftline_labelled_trigger_decisions_total",
    "Labelled-performance retraining decisions, by outcome.",
    ["outcome"],
)


def start_at_zero(counter: Counter, *label_values: str) -> None:
    """Export these labelled series at 0 before their first event: a series that appears with
    its first event already at 1 hides that rise from Prometheus's increase() and rate()."""
    for value in label_values:
        counter.labels(value)


def version_number(version: str) -> float:
    """A registry version as a gauge value (MLflow versions are integers; NaN otherwise)."""
    return float(version) if version.isdigit() else float("nan")
