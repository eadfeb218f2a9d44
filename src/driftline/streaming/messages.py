"""A Kafka message as services see it, independent of the client library."""

from __future__ import annotations

import base64
from typing import NamedTuple

from driftline.core.records import MessageSource


class Message(NamedTuple):
    """One consumed record: a tuple, built in C per record (a frozen dataclass's ``__init__``
    cost about 1 us a message in the consumer loop)."""

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


class Polled(list[Message]):
    """A polled micro-batch: its messages in order, and ``ends``, past the last message of
    each (topic, partition) it holds, taken from the fetch's per-partition lists, so that
    committing it and measuring lag cost O(partitions), not O(messages). A slice of it is a
    plain list (its ends would be wrong)."""

    __slots__ = ("ends",)

    def __init__(self, messages: list[Message], ends: dict[tuple[str, int], int]) -> None:
        super().__init__(messages)
        self.ends = ends
