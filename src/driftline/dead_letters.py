"""Dead letters for any service: the message as received, where it came from, and why."""

from __future__ import annotations

from driftline.messages import Message
from driftline.records import DeadLetter, FailedCheck


def dead_letter(
    message: Message, stage: str, reasons: list[FailedCheck], sensor_id: str | None = None
) -> DeadLetter:
    payload, encoding = message.payload_text()
    return DeadLetter(
        stage=stage,
        reasons=reasons,
        source=message.source,
        key=message.key_text,
        payload=payload,
        payload_encoding=encoding,
        sensor_id=sensor_id,
    )
