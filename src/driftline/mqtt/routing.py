"""From one MQTT message to its Kafka record: pure functions, no client, no broker.

A reading is forwarded unchanged, keyed by its sensor id, except for the one envelope field the
wire format needs: ``sensor_id``, spliced in from the topic when the payload lacks it. Whatever
else is wrong with a payload (not JSON, bad values) is the validator's to judge, as for any
reading. The gateway itself rejects only what it cannot forward: a payload over the size limit
(it might not even fit a Kafka message) and a topic outside the pattern (no sensor to key it by).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from driftline.core.errors import ConfigurationError
from driftline.core.records import FailedCheck
from driftline.streaming.messages import Message

SENSOR_ID = "{sensor_id}"
TOO_LARGE = "too_large"
TOPIC_MISMATCH = "topic_mismatch"
# A dead letter's source names the MQTT topic (no Kafka position: partition and offset -1).
SOURCE_PREFIX = "mqtt:"
SOURCE_TOPIC_LIMIT = 200


@dataclass(frozen=True)
class TopicPattern:
    """Where the sensor id sits in a topic: ``sensors/{sensor_id}/readings``; ``+`` is any one
    level, a final ``#`` the rest. Without ``{sensor_id}`` the id comes from the payload."""

    pattern: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, pattern: str) -> TopicPattern:
        levels = pattern.split("/")
        if pattern.count(SENSOR_ID) > 1:
            raise ConfigurationError(f"topic pattern {pattern!r} names {SENSOR_ID} twice")
        parts: list[str] = []
        for i, level in enumerate(levels):
            if level == SENSOR_ID:
                parts.append("(?P<sensor_id>[^/]+)")
            elif level == "+":
                parts.append("[^/]+")
            elif level == "#" and i == len(levels) - 1:
                parts.append(".*")
            elif "+" in level or "#" in level or SENSOR_ID in level:
                raise ConfigurationError(
                    f"topic pattern {pattern!r}: {level!r} must be a whole level"
                )
            else:
                parts.append(re.escape(level))
        regex = "/".join(parts)
        if regex.endswith("/.*"):  # 'a/#' also matches 'a', as an MQTT filter does
            regex = regex[:-3] + "(?:/.*)?"
        return cls(pattern, re.compile(regex))

    def match(self, topic: str) -> tuple[bool, str | None]:
        """Whether ``topic`` fits the pattern, and the sensor id it names (if any)."""
        m = self.regex.fullmatch(topic)
        if m is None:
            return False, None
        return True, m.groupdict().get("sensor_id")


@dataclass(frozen=True, slots=True)
class Routed:
    """What to publish for one MQTT message: a reading for the raw topic, or (``check`` set)
    the reason the gateway dead-letters it."""

    key: bytes | None
    value: bytes
    check: str | None = None
    detail: str = ""


def route(topic: str, payload: bytes, pattern: TopicPattern, max_bytes: int) -> Routed:
    """The record for the MQTT message ``payload`` received on ``topic``."""
    if len(payload) > max_bytes:
        return Routed(None, payload, TOO_LARGE, f"{len(payload)} bytes > limit {max_bytes}")
    matched, topic_id = pattern.match(topic)
    if not matched:
        return Routed(
            None,
            payload,
            TOPIC_MISMATCH,
            f"MQTT topic {topic[:SOURCE_TOPIC_LIMIT]!r} does not match {pattern.pattern!r}",
        )
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):  # not a reading at all: the validator dead-letters it
        return Routed(_key(topic_id), payload)
    if "sensor_id" in doc or topic_id is None:  # the payload's own id (even a bad one) wins
        own = doc.get("sensor_id")
        return Routed(_key(own if isinstance(own, str) else topic_id), payload)
    return Routed(_key(topic_id), with_sensor_id(payload, topic_id, empty=not doc))


def with_sensor_id(payload: bytes, sensor_id: str, empty: bool) -> bytes:
    """``payload`` (a JSON object) with ``sensor_id`` as its first field, every other byte as
    it was (numbers keep their spelling: re-serialising could change them)."""
    start = payload.index(b"{") + 1
    field = b'"sensor_id":' + orjson.dumps(sensor_id)
    return payload[:start] + field + (b"" if empty else b",") + payload[start:]


def _key(sensor_id: str | None) -> bytes | None:
    return None if sensor_id is None else sensor_id.encode()


def rejected_message(topic: str, routed: Routed) -> tuple[Message, list[FailedCheck]]:
    """The rejected MQTT message as a dead letter's source, with its reason."""
    source = Message(f"{SOURCE_PREFIX}{topic[:SOURCE_TOPIC_LIMIT]}", -1, -1, None, routed.value)
    check = routed.check or "rejected"  # only rejected messages come here
    return source, [FailedCheck(check=check, column=None, detail=routed.detail)]
