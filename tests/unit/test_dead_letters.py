"""A dead letter always fits a Kafka message, however large and however escaped its payload."""

from __future__ import annotations

from driftline.core.records import DeadLetter, FailedCheck
from driftline.streaming.dead_letters import PAYLOAD_LIMIT, dead_letter
from driftline.streaming.messages import Message

TOO_LARGE = [FailedCheck(check="too_large", detail="over the limit")]


def test_a_payload_of_control_characters_is_cut_to_fit() -> None:
    value = b"\x01" * 900_000  # JSON escapes each byte as \\u0001: 5.4 MB if kept whole
    letter = dead_letter(Message("raw", 0, 7, b"pump-1", value), "validator", TOO_LARGE)
    encoded = letter.to_bytes()
    assert len(encoded) < 1_000_000
    assert letter.payload_truncated and letter.payload_bytes == len(value)
    back = DeadLetter.model_validate_json(encoded)
    assert back.payload == "\x01" * PAYLOAD_LIMIT


def test_a_small_payload_is_kept_whole() -> None:
    value = b'{"v": 1, "sensor_id": "pump-1"}'
    letter = dead_letter(Message("raw", 0, 8, None, value), "validator", TOO_LARGE)
    assert letter.payload == value.decode() and letter.payload_encoding == "utf-8"
    assert not letter.payload_truncated and letter.payload_bytes == len(value)


def test_bytes_that_are_not_text_are_base64() -> None:
    letter = dead_letter(Message("raw", 0, 9, None, b"\xff\xfe" * 10), "ingest", TOO_LARGE)
    assert letter.payload_encoding == "base64" and not letter.payload_truncated
