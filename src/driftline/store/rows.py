"""Rows of the raw store from Kafka messages: the message's identity, the reading's, the key
columns, and a payload any database accepts (see ``raw_store``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftline.core.records import as_utc, reading_id
from driftline.streaming.messages import Message
from driftline.validation.parsing import (
    PLAUSIBLE_FROM,
    PLAUSIBLE_UNTIL,
    MalformedJson,
    load_json,
    parse_timestamp,
    valid_sensor_id,
    valid_seq,
)


def naive_utc(ts: datetime) -> datetime:
    """SQL DATETIME columns hold naive UTC."""
    return as_utc(ts).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class KeyColumns:
    message_id: str
    reading_id: str | None
    sensor_id: str | None
    event_ts: datetime | None
    seq: int | None

    def as_row(self) -> dict[str, Any]:
        """These columns as a raw_readings row holds them."""
        return {
            "message_id": self.message_id,
            "reading_id": self.reading_id,
            "sensor_id": self.sensor_id,
            "event_ts": naive_utc(self.event_ts) if self.event_ts else None,
            "seq": self.seq,
        }


def message_id_key_part(key: bytes | None) -> bytes:
    """What ``message_id`` hashes of the key, before the value's part."""
    return b"-" if key is None else b"k" + len(key).to_bytes(8, "big") + key


def message_id(key: bytes | None, value: bytes | None) -> str:
    """The message's own identity: blake2b-128 of its key and payload (a missing key or
    value is told apart from an empty one)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(message_id_key_part(key))
    h.update(b"-" if value is None else b"v" + value)
    return h.hexdigest()


def key_columns(message: Message) -> KeyColumns:
    """Identity and key columns of a message, as far as it can be read.

    A reading is identified by sensor, time and sequence number, with the validator's field
    rules, so both derive the same reading id. A message whose ``seq`` is there but not a
    valid one has no reading id (it is not "the reading without a seq").
    """
    sensor_id = ts = seq = None
    seq_ok = False
    try:
        doc = load_json(message.value or b"")
    except MalformedJson:
        doc = None
    if isinstance(doc, dict):
        sensor_id = valid_sensor_id(doc.get("sensor_id"))
        ts = parse_timestamp(doc.get("ts"))
        seq = valid_seq(doc.get("seq"))
        seq_ok = seq is not None or doc.get("seq") is None
    rid = None
    if sensor_id is not None and ts is not None and seq_ok:
        rid = reading_id(sensor_id, ts, seq)
    if ts is not None and not PLAUSIBLE_FROM <= ts <= PLAUSIBLE_UNTIL:
        ts = None  # beyond what every database's DATETIME holds; the reading id keeps it
    return KeyColumns(message_id(message.key, message.value), rid, sensor_id, ts, seq)


def message_row(message: Message, received: datetime, payload_limit: int) -> dict[str, Any]:
    """The raw_readings row of ``message``: what any database accepts, whatever it holds."""
    k = key_columns(message)
    value = message.value
    return {
        **k.as_row(),
        "received_at": received,
        "kafka_topic": message.topic,
        "kafka_partition": message.partition,
        "kafka_offset": message.offset,
        # Undecodable bytes as escapes (\xff): the column is text in the server's charset.
        "msg_key": None
        if message.key is None
        else message.key.decode("utf-8", "backslashreplace")[:255],
        "payload": (value or b"")[:payload_limit],
        "payload_bytes": None if value is None else len(value),
        "payload_truncated": value is not None and len(value) > payload_limit,
    }
