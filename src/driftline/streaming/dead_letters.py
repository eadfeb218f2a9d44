"""Dead letters for any service: the message as received, where it came from, and why.

Building and serialising one never fails, whatever the message held: every string is made
encodable (a lone surrogate becomes its escape), and if serialising still fails a minimal
dead letter (no payload) takes its place.
"""

from __future__ import annotations

import logging

from driftline.core.records import DeadLetter, FailedCheck
from driftline.streaming.messages import Message

# A dead letter keeps at most this much of the payload: JSON escaping can make a payload of
# control characters six times larger, and a dead letter must still fit a Kafka message (1 MB
# by default). The whole message is in the raw store.
PAYLOAD_LIMIT = 64 * 1024
# And at most this many reasons: a message of thousands of unknown fields would otherwise
# make a dead letter larger than the message (each reason is up to about 1 KiB).
MAX_REASONS = 100

log = logging.getLogger(__name__)


def encodable(text: str | None, limit: int | None = None) -> str | None:
    """``text`` (its first ``limit`` characters) as a string UTF-8 can encode."""
    if text is None:
        return None
    text = text[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _clean(reasons: list[FailedCheck]) -> list[FailedCheck]:
    kept = [
        FailedCheck(
            check=encodable(r.check, 100) or "",
            column=encodable(r.column, 100),
            detail=encodable(r.detail, 1000) or "",
        )
        for r in reasons[:MAX_REASONS]
    ]
    if len(reasons) > MAX_REASONS:
        more = len(reasons) - MAX_REASONS
        kept.append(FailedCheck(check="truncated", detail=f"{more} more failed checks not listed"))
    return kept


def dead_letter(
    message: Message, stage: str, reasons: list[FailedCheck], sensor_id: str | None = None
) -> DeadLetter:
    size = len(message.value or b"")
    payload, encoding = message.payload_text(PAYLOAD_LIMIT)
    return DeadLetter(
        stage=stage,
        reasons=_clean(reasons),
        source=message.source,
        key=encodable(message.key_text, 1000),
        payload=payload,
        payload_encoding=encoding,
        payload_bytes=size,
        payload_truncated=size > PAYLOAD_LIMIT,
        sensor_id=encodable(sensor_id, 200),
    )


def dead_letter_bytes(
    message: Message, stage: str, reasons: list[FailedCheck], sensor_id: str | None = None
) -> bytes:
    """The dead letter of ``message``, serialised; never raises."""
    try:
        return dead_letter(message, stage, reasons, sensor_id).to_bytes()
    except Exception:  # a bug of ours must not stop the stream: keep where and why
        log.exception("dead letter of %s[%d]@%d", message.topic, message.partition, message.offset)
    return DeadLetter(
        stage=stage,
        reasons=[FailedCheck(check=encodable(r.check, 100) or "", detail="") for r in reasons],
        source=message.source,
        key=None,
        payload="",
        payload_bytes=len(message.value or b""),
        payload_truncated=True,
    ).to_bytes()
