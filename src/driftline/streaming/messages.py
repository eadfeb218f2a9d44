"""A Kafka message as services see it, independent of the client library."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from driftline.core.records import MessageSource


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None

    @property
    def source(self) -> MessageSource:
        return MessageSource(topic=self.topic, partition=self.partition, offset=self.offset)

    @property
    def key_text(self) -> str | None:
        return None if self.key is None else self.key.decode("utf-8", errors="replace")

    def payload_text(self, limit: int | None = None) -> tuple[str, str]:
        """The value (its first ``limit`` bytes) as text for a dead letter: UTF-8 when it is,
        else base64."""
        raw = (self.value or b"")[:limit]
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"
