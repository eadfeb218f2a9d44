"""Turns raw message bytes into flat reading rows, recording every structural problem.

Value checks (ranges, nulls, sensors, timestamps, duplicates) are the schema's job; this
module only answers "is this a reading at all, and of the right types?".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from driftline.records import FailedCheck, reading_id

REQUIRED = ("sensor_id", "ts", "values")
PLAUSIBLE_FROM = datetime(1970, 1, 1, tzinfo=UTC)
PLAUSIBLE_UNTIL = datetime(2200, 1, 1, tzinfo=UTC)
OPTIONAL = ("seq", "label", "v")


@dataclass(slots=True)
class ParsedReading:
    """One message after parsing: the fields that parsed, and what did not."""

    sensor_id: str | None = None
    ts: datetime | None = None
    seq: int | None = None
    label: int | None = None
    values: dict[str, float] = field(default_factory=dict)
    problems: list[FailedCheck] = field(default_factory=list)
    fatal: bool = False  # not a reading at all: the schema is not run on it

    @property
    def reading_id(self) -> str | None:
        if self.sensor_id is None or self.ts is None:
            return None
        return reading_id(self.sensor_id, self.ts, self.seq)


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # orjson rejects NaN and Infinity, which many sensor stacks emit; the schema then
        # reports them as values, which is the more useful reason.
        return json.loads(raw)


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_reading(raw: bytes | None, features: list[str], max_bytes: int) -> ParsedReading:
    out = ParsedReading()

    def fail(check: str, detail: str, column: str | None = None, fatal: bool = False) -> None:
        out.problems.append(FailedCheck(check=check, column=column, detail=detail))
        out.fatal = out.fatal or fatal

    if raw is None:
        fail("not_json", "empty message (tombstone)", fatal=True)
        return out
    if len(raw) > max_bytes:
        fail("too_large", f"{len(raw)} bytes, limit {max_bytes}", fatal=True)
        return out
    try:
        doc = _loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        fail("not_json", f"not valid JSON: {exc}"[:200], fatal=True)
        return out
    if not isinstance(doc, dict):
        fail("not_object", f"expected a JSON object, got {type(doc).__name__}", fatal=True)
        return out

    for name in REQUIRED:
        if name not in doc:
            fail("missing_field", f"'{name}' is required", column=name, fatal=True)
    for name in doc.keys() - set(REQUIRED) - set(OPTIONAL):
        fail("unexpected_field", f"unknown field '{name}'"[:200], column=str(name)[:100])

    sensor_id = doc.get("sensor_id")
    if "sensor_id" in doc:
        if isinstance(sensor_id, str) and sensor_id.strip():
            out.sensor_id = sensor_id
        else:
            fail("wrong_type", "must be a non-empty string", column="sensor_id", fatal=True)

    if "ts" in doc:
        out.ts = parse_timestamp(doc["ts"])
        if out.ts is None:
            fail("wrong_type", "must be an ISO 8601 timestamp string", column="ts", fatal=True)
        elif not PLAUSIBLE_FROM <= out.ts <= PLAUSIBLE_UNTIL:
            # Outside what any clock check could accept (and what pandas can represent).
            check = "not_too_old" if out.ts < PLAUSIBLE_FROM else "not_in_future"
            fail(check, f"{doc['ts']} is not a plausible reading time", column="ts", fatal=True)

    seq = doc.get("seq")
    if seq is not None:
        if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
            out.seq = seq
        else:
            fail("wrong_type", "must be a non-negative integer", column="seq")

    label = doc.get("label")
    if label is not None:
        if _is_number(label) and label in (0, 1):
            out.label = int(label)
        else:
            fail("wrong_type", "must be 0 or 1", column="label")

    if doc.get("v", 1) != 1:
        fail("unsupported_version", f"record version {doc.get('v')!r} is not 1", column="v")

    values = doc.get("values")
    if "values" in doc and not isinstance(values, dict):
        fail("wrong_type", "must be an object of measurement: number", column="values", fatal=True)
    elif isinstance(values, dict):
        known = set(features)
        for name, value in values.items():
            if name not in known:
                fail(
                    "unknown_measurement", f"'{name}' is not in the profile"[:200], str(name)[:100]
                )
            elif value is None:
                out.values[name] = math.nan  # the schema reports it as missing
            elif _is_number(value):
                out.values[name] = float(value)
            else:
                fail("wrong_type", f"must be a number, got {type(value).__name__}", column=name)
        for name in features:
            if name not in values:
                fail("missing_measurement", "measurement absent", column=name)
    return out
