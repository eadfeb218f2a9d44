"""Builders of readings and messages shared by the unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from driftline.core.records import ValidReading, reading_id
from driftline.streaming.messages import Message

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

# A plausible SKAB pump reading, every measurement well inside its range.
NORMAL_VALUES: dict[str, float] = {
    "Accelerometer1RMS": 0.21,
    "Accelerometer2RMS": 0.27,
    "Current": 2.4,
    "Pressure": 0.11,
    "Temperature": 89.5,
    "Thermocouple": 28.5,
    "Voltage": 228.6,
    "Volume Flow RateRMS": 125.2,
}

_offsets = itertools.count()


def iso(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds").replace("+00:00", "Z")


def reading_doc(
    sensor_id: str = "pump-001",
    ts: datetime | str = NOW - timedelta(seconds=60),
    seq: int | None = 1,
    **overrides: Any,
) -> dict[str, Any]:
    """A well-formed reading as a JSON document; ``values`` may be overridden per measurement
    with ``values={...}`` (merged into the normal values)."""
    values = dict(NORMAL_VALUES)
    values.update(overrides.pop("values", {}))
    doc: dict[str, Any] = {
        "sensor_id": sensor_id,
        "ts": ts if isinstance(ts, str) else iso(ts),
        "values": values,
    }
    if seq is not None:
        doc["seq"] = seq
    doc.update(overrides)
    return doc


def message(
    payload: dict[str, Any] | list[Any] | bytes | None,
    *,
    topic: str = "raw",
    partition: int = 0,
    offset: int | None = None,
) -> Message:
    """A raw-topic message carrying ``payload`` (a document is encoded as JSON)."""
    if isinstance(payload, dict | list):
        value: bytes | None = orjson.dumps(payload)
    else:
        value = payload
    sensor = payload.get("sensor_id") if isinstance(payload, dict) else None
    return Message(
        topic=topic,
        partition=partition,
        offset=next(_offsets) if offset is None else offset,
        # Keyed by its sensor, as a sensor publishes it.
        key=sensor.encode("utf-8", "surrogatepass") if isinstance(sensor, str) else b"pump-001",
        value=value,
    )


def valid_reading(
    sensor_id: str = "pump-001",
    ts: datetime = NOW,
    seq: int | None = 0,
    values: dict[str, float] | None = None,
) -> ValidReading:
    return ValidReading(
        reading_id=reading_id(sensor_id, ts, seq),
        sensor_id=sensor_id,
        ts=ts,
        seq=seq,
        values=dict(NORMAL_VALUES if values is None else values),
    )
