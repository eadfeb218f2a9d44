"""Turns raw message bytes into flat reading rows, recording every structural problem.

Value checks (ranges, nulls, sensors, timestamps, duplicates) are the schema's job; this
module only answers "is this a reading at all, and of the right types?".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftline.core.errors import DriftlineError
from driftline.core.records import FailedCheck, ValidReading, reading_id
from driftline.validation.strict_json import MalformedJson, load_json

REQUIRED = ("sensor_id", "ts", "values")
MAX_SENSOR_ID = 128
PLAUSIBLE_FROM = datetime(1970, 1, 1, tzinfo=UTC)
PLAUSIBLE_UNTIL = datetime(2200, 1, 1, tzinfo=UTC)
OPTIONAL = ("seq", "label", "v")
FIELDS = frozenset(REQUIRED + OPTIONAL)


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

    def valid(self, rid: str | None) -> ValidReading:
        """The ValidReading of a reading that passed every check, whose id is ``rid``."""
        if rid is None or not self.sensor_id or self.ts is None:
            # Passing every check implies these; a gap is a bug in the checks.
            raise DriftlineError("a reading that passed every check has no identity")
        return ValidReading(
            reading_id=rid,
            sensor_id=self.sensor_id,
            ts=self.ts,
            seq=self.seq,
            values=self.values,
            label=self.label,
        )


def valid_sensor_id(value: Any) -> str | None:
    # Printable: no control characters (NUL), no direction overrides, no lone surrogates.
    if (
        isinstance(value, str)
        and value.strip()
        and len(value) <= MAX_SENSOR_ID
        and value.isprintable()
    ):
        return value
    return None


def valid_seq(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    return None


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except (ValueError, OverflowError):  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        return None


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
        doc = load_json(raw, max_bytes=max_bytes)
    except MalformedJson as exc:
        fail(exc.check, exc.detail, fatal=True)
        return out
    if not isinstance(doc, dict):
        fail("not_object", f"expected a JSON object, got {type(doc).__name__}", fatal=True)
        return out

    for name in REQUIRED:
        if name not in doc:
            fail("missing_field", f"'{name}' is required", column=name, fatal=True)
    if not FIELDS.issuperset(doc):
        for name in doc.keys() - FIELDS:
            fail("unexpected_field", f"unknown field '{name}'"[:200], column=str(name)[:100])

    if "sensor_id" in doc:
        out.sensor_id = valid_sensor_id(doc["sensor_id"])
        if out.sensor_id is None:
            fail(
                "wrong_type",
                f"must be a non-empty printable string of at most {MAX_SENSOR_ID} characters",
                column="sensor_id",
                fatal=True,
            )

    if "ts" in doc:
        out.ts = parse_timestamp(doc["ts"])
        if out.ts is None:
            fail("wrong_type", "must be an ISO 8601 timestamp string", column="ts", fatal=True)
        elif not PLAUSIBLE_FROM <= out.ts <= PLAUSIBLE_UNTIL:
            # Outside what any clock check could accept (and what pandas can represent).
            check = "not_too_old" if out.ts < PLAUSIBLE_FROM else "not_in_future"
            fail(check, f"{doc['ts']} is not a plausible reading time", column="ts", fatal=True)

    if doc.get("seq") is not None:
        out.seq = valid_seq(doc["seq"])
        if out.seq is None:
            fail("wrong_type", "must be an integer from 0 to 2**63 - 1", column="seq")

    label = doc.get("label")
    if label is not None:
        if _is_number(label) and label in (0, 1):
            out.label = int(label)
        else:
            fail("wrong_type", "must be 0 or 1", column="label")

    version = doc.get("v", 1)
    if type(version) is not int or version != 1:  # not True, not 1.0: the integer 1
        fail("unsupported_version", f"record version {str(version)[:40]} is not 1", column="v")

    values = doc.get("values")
    if "values" in doc and not isinstance(values, dict):
        fail("wrong_type", "must be an object of measurement: number", column="values", fatal=True)
    elif (
        type(values) is dict
        and len(values) == len(features)
        and all(name in values for name in features)
        and all(type(value) is float for value in values.values())
    ):
        # The common case, a float for every measurement and nothing else: the loop below
        # would accept each value as it is. (JSON numbers with a fraction or exponent are
        # floats; NaN and Infinity too, which the schema reports.)
        out.values = values
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
                out.values[name] = float(value)  # integers are within 64 bits (load_json)
            else:
                fail("wrong_type", f"must be a number, got {type(value).__name__}", column=name)
        for name in features:
            if name not in values:
                fail("missing_measurement", "measurement absent", column=name)
    return out


def key_mismatch(key: bytes, sensor_id: str) -> FailedCheck | None:
    """A keyed message must be keyed by its sensor: the key decides the partition, and one
    sensor's readings stay in order only in one partition."""
    if key == sensor_id.encode():
        return None
    shown = key[:60].decode("utf-8", "backslashreplace")
    return FailedCheck(
        check="key_mismatch",
        column="key",
        detail=f"message key {shown!r} is not the reading's sensor_id {sensor_id[:60]!r}",
    )
