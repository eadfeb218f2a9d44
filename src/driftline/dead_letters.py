"""Dead letters for any service: the message as received, where it came from, and why."""

from __future__ import annotations

from driftline.messages import Message
from driftline.records import DeadLetter, FailedCheck

# A dead letter keeps at most this much of the payload: JSON escaping can make a payload of
# control characters six times larger, and a dead letter must still fit a Kafka message (1 MB
# by default). The whole message is in the raw store.
PAYLOAD_LIMIT = 64 * 1024


def dead_letter(
    message: Message, stage: str, reasons: list[FailedCheck], sensor_id: str | None = None
) -> DeadLetter:
    size = len(message.value or b"")
    payload, encoding = message.payload_text(PAYLOAD_LIMIT)
    return DeadLetter(
        stage=stage,
        reasons=reasons,
        source=message.source,
        key=message.key_text,
        payload=payload,
        payload_encoding=encoding,
        payload_bytes=size,
        payload_truncated=size > PAYLOAD_LIMIT,
        sensor_id=sensor_id,
    )
