"""Typed, versioned records of every topic. ``docs/events.md`` documents them.

Each record carries ``v`` (its schema version). Consumers accept the versions they know and
dead-letter the rest; a change that breaks readers bumps ``v``.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer

UtcDatetime = Annotated[datetime, Field(description="UTC, ISO 8601")]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def as_utc(ts: datetime) -> datetime:
    """Timestamps are UTC throughout; a naive one is taken to be UTC already."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def epoch_ns(ts: datetime) -> int:
    """Nanoseconds since the epoch (UTC; a naive time is taken to be UTC already)."""
    delta = as_utc(ts) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def reading_id(sensor_id: str, ts: datetime, seq: int | None) -> str:
    """Identity of a reading: the same sensor, time and sequence number is the same reading."""
    stamp = as_utc(ts).isoformat(timespec="microseconds")
    return hashlib.blake2b(f"{sensor_id}|{stamp}|{seq}".encode(), digest_size=16).hexdigest()


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_serializer("*", when_used="json", check_fields=False)
    def _serialize(self, value: object) -> object:
        if isinstance(value, datetime):
            return as_utc(value).isoformat(timespec="microseconds").replace("+00:00", "Z")
        return value

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


class Reading(Record):
    """Wire format of a sensor reading on the raw topic (key: sensor id)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1] = 1
    sensor_id: str
    ts: UtcDatetime
    seq: int | None = None
    values: dict[str, float]
    label: int | None = Field(None, description="Known anomaly flag (0/1), when the source has one")


class ReadingRecord(Record):
    """A record about one reading, led by the reading's identity: ``reading_id`` (of sensor,
    time and sequence number) and those three. ``v`` is version 1 of each such record; one
    that changes redeclares it (its place stays first)."""

    v: Literal[1] = 1
    reading_id: str
    sensor_id: str
    ts: UtcDatetime
    seq: int | None = None


class ValidReading(ReadingRecord):
    """A reading that passed validation, on the valid topic (key: sensor id)."""

    values: dict[str, float]
    label: int | None = None

    def to_bytes(self) -> bytes:
        # The validator's hot path: the JSON of model_dump_json, in half the time (its
        # per-field serializer is a Python call per field).
        return orjson.dumps(
            {
                "v": self.v,
                "reading_id": self.reading_id,
                "sensor_id": self.sensor_id,
                "ts": as_utc(self.ts).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "seq": self.seq,
                "values": self.values,
                "label": self.label,
            }
        )


class FailedCheck(Record):
    check: str = Field(description="Name of the failed check, e.g. in_range, not_json")
    column: str | None = Field(None, description="Field or measurement it concerns")
    detail: str = Field(description="Human-readable explanation")


class MessageSource(Record):
    topic: str
    partition: int
    offset: int


class DeadLetter(Record):
    """A message that could not be accepted, with every check it failed."""

    v: Literal[1] = 1
    stage: str = Field(description="Service that rejected it")
    reasons: list[FailedCheck]
    source: MessageSource
    key: str | None
    payload: str = Field(
        description="The message as received (UTF-8, or base64 if not text), its first 64 KiB"
    )
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload_bytes: int | None = Field(None, description="Size of the message as received")
    payload_truncated: bool = False
    sensor_id: str | None = None
    failed_at: UtcDatetime = Field(default_factory=utcnow)


class FeatureDrift(Record):
    feature: str
    stattest: str
    statistic: float = Field(description="Distance or p-value, as the stattest defines")
    threshold: float
    drifted: bool


class DriftEvent(Record):
    """Result of comparing one window of one sensor with the reference."""

    v: Literal[1] = 1
    event_id: str = Field(default_factory=new_id)
    sensor_id: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    window_size: int
    reference_id: str
    features: list[FeatureDrift]
    drift_share: float
    flatlined: list[str] = Field(
        default_factory=list, description="Features stuck at one value through the window"
    )
    drifted: bool = Field(description="drift_share reached the threshold, or a feature flatlined")
    closed_by: Literal["count", "time"]
    emitted_at: UtcDatetime = Field(default_factory=utcnow)
    basis: Literal["raw", "baseline"] = Field(
        "raw",
        description="raw: measurements compared as they are; baseline: each relative to its "
        "sensor's baseline (events of before this field are raw)",
    )
    baseline: Literal["ready", "pending"] | None = Field(
        None,
        description="On the baseline basis: pending when the sensor has no complete baseline "
        "(the window is not compared: no features, drift share 0)",
    )
    baseline_version: str | None = Field(
        None, description="Version of the sensor's baseline the window was judged against"
    )


class RetrainRequest(Record):
    """Published when the trigger decides drift is real."""

    v: Literal[1] = 1
    request_id: str = Field(default_factory=new_id)
    requested_at: UtcDatetime = Field(default_factory=utcnow)
    reason: str
    sensors: list[str]
    drift_event_ids: list[str]
    data_start: UtcDatetime = Field(description="Earliest event time of the drifted windows")
    data_end: UtcDatetime


class ModelPromoted(Record):
    """Published when a model becomes champion; drift reloads its reference."""

    v: Literal[1] = 1
    model_name: str
    model_version: str
    reference_uri: str = Field(description="Path or URI of the model's reference data")
    promoted_at: UtcDatetime = Field(default_factory=utcnow)
    run_id: str | None = None
    request_id: str | None = None


class Prediction(ReadingRecord):
    """Serving's answer for one reading; also published for monitoring (key: sensor id)."""

    anomaly_probability: float | None = Field(
        ge=0,
        le=1,
        description="The model's score relative to its decision threshold (0.5 at it); None "
        "while the sensor's baseline is pending",
    )
    label: int | None = Field(
        description="1: anomaly (probability at or above the serving threshold); None while "
        "the sensor's baseline is pending"
    )
    model_name: str
    model_version: str
    predicted_at: UtcDatetime = Field(default_factory=utcnow)
    family: str | None = Field(None, description="The model's family, e.g. pca-t2q, xgboost")
    baseline: Literal["ready", "pending"] = Field(
        "ready", description="pending: the sensor has no complete baseline yet, so no score"
    )
    baseline_version: str | None = Field(
        None, description="Version of the sensor's baseline the reading was judged against"
    )


class LabelRecorded(Record):
    """An operator's label of one sensor's time range, from Label Studio (key: sensor id).

    ``label_id`` is stable: a label published twice (a crash between publish and bookkeeping)
    carries the same id, and consumers keep one.
    """

    v: Literal[1] = 1
    label_id: str
    sensor_id: str
    start: UtcDatetime
    end: UtcDatetime
    label: Literal["fault", "normal", "unsure"]
    annotator: str
    task_key: str = Field(description="Driftline's deterministic key of the labelled task")
    ls_task_id: int = Field(description="The task's id in Label Studio")
    annotation_id: int
    annotated_at: UtcDatetime
    source: Literal["webhook", "pull"] = Field(description="How the annotation reached Driftline")
    recorded_at: UtcDatetime = Field(default_factory=utcnow)


class LabelledPerformance(Record):
    """The production model's score against operators' labels, after a label sync pass that
    changed it (key: model version). The trigger's labelled-F1 rule decides on it."""

    v: Literal[1] = 1
    event_id: str = Field(default_factory=new_id)
    model_version: str
    readings: int = Field(description="Labelled readings the score covers (the newest ones)")
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float
    sensors: list[str] = Field(description="Sensors of the labelled readings")
    data_start: UtcDatetime = Field(description="Event time of the oldest labelled reading scored")
    data_end: UtcDatetime
    emitted_at: UtcDatetime = Field(default_factory=utcnow)
