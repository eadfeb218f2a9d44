"""Decoding the valid-readings topic (``ValidReading``, v1) for the services that consume it.

``ValidReading.model_validate_json`` costs about as much per reading as the drift service's
whole Kafka fetch. ``decode_valid_reading`` reads the same JSON with msgspec into a
``WireValidReading``, a plain struct with the same fields (what ``SensorWindows.add`` and the
drift handler read), and falls back to the pydantic model for whatever msgspec's stricter
decoding refuses: a record is accepted exactly when ``ValidReading`` accepts it, and a bad one
raises the model's ``ValidationError``, as before. ``tests/unit/test_valid_topic.py`` holds
the two to the same fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from driftline.core.records import ValidReading


class WireValidReading(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    v: Literal[1] = 1
    reading_id: str
    sensor_id: str
    ts: datetime
    seq: int | None = None
    values: dict[str, float]
    label: int | None = None


_decoder = msgspec.json.Decoder(WireValidReading)


def decode_valid_reading(raw: bytes | None) -> WireValidReading | ValidReading:
    """The record ``raw`` holds; ``pydantic.ValidationError`` if it is not a ValidReading."""
    try:
        return _decoder.decode(raw or b"")
    except msgspec.DecodeError:  # includes msgspec.ValidationError
        return ValidReading.model_validate_json(raw or b"")
