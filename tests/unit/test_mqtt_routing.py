"""MQTT gateway routing: topic patterns, the sensor id envelope, what the gateway rejects; and
the MQTT URL, subscription and publishing topic built from settings."""

from __future__ import annotations

import orjson
import pytest

from driftline.core.errors import ConfigurationError
from driftline.core.settings import Settings
from driftline.mqtt.client import parse_url, subscription
from driftline.mqtt.publisher import sensor_topic
from driftline.mqtt.routing import (
    TOO_LARGE,
    TOPIC_MISMATCH,
    TopicPattern,
    rejected_message,
    route,
)
from driftline.streaming.dead_letters import dead_letter
from driftline.validation.parsing import parse_reading
from tests.unit.factories import NORMAL_VALUES, reading_doc

PATTERN = TopicPattern.parse("sensors/{sensor_id}/readings")
LIMIT = 64 * 1024


def test_pattern_takes_the_sensor_id_from_its_level() -> None:
    assert PATTERN.match("sensors/pump-007/readings") == (True, "pump-007")
    assert PATTERN.match("sensors/pump-007/status") == (False, None)
    assert PATTERN.match("sensors/a/b/readings") == (False, None)
    assert PATTERN.match("other/pump-007/readings") == (False, None)


def test_pattern_wildcards_and_a_pattern_without_the_id() -> None:
    p = TopicPattern.parse("site/+/{sensor_id}/#")
    assert p.match("site/north/pump-1/readings/v1") == (True, "pump-1")
    assert p.match("site/north/pump-1") == (True, "pump-1")
    assert p.match("site/pump-1") == (False, None)
    assert TopicPattern.parse("plant/#").match("plant/a/b") == (True, None)
    # Regex characters in a level are literal.
    assert TopicPattern.parse("a.b/{sensor_id}").match("axb/s1") == (False, None)


@pytest.mark.parametrize(
    "bad", ["sensors/{sensor_id}/{sensor_id}", "sensors/pump-{sensor_id}", "a/#/b", "a/b+"]
)
def test_a_bad_pattern_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        TopicPattern.parse(bad)


def test_a_reading_with_its_sensor_id_is_forwarded_byte_for_byte() -> None:
    payload = orjson.dumps(reading_doc(sensor_id="pump-002"))
    routed = route("sensors/pump-002/readings", payload, PATTERN, LIMIT)
    assert (routed.key, routed.value, routed.check) == (b"pump-002", payload, None)


def test_the_payloads_own_sensor_id_wins_over_the_topics() -> None:
    payload = orjson.dumps(reading_doc(sensor_id="pump-009"))
    assert route("sensors/pump-002/readings", payload, PATTERN, LIMIT).key == b"pump-009"
    # A sensor_id of the wrong type stays for the validator to reject; keyed by the topic.
    bad = b'{"sensor_id": 5, "ts": "2024-05-01T12:00:00Z", "values": {}}'
    routed = route("sensors/pump-002/readings", bad, PATTERN, LIMIT)
    assert (routed.key, routed.value, routed.check) == (b"pump-002", bad, None)


def test_a_missing_sensor_id_is_spliced_in_from_the_topic_and_nothing_else_changes() -> None:
    doc = reading_doc()
    del doc["sensor_id"]
    payload = b'  {"ts": "2024-05-01T12:00:00Z", "values": {"Current": 1e0, "Voltage": 230.10}}'
    routed = route("sensors/pump-003/readings", payload, PATTERN, LIMIT)
    assert routed.key == b"pump-003"
    assert routed.value == (
        b'  {"sensor_id":"pump-003","ts": "2024-05-01T12:00:00Z", '
        b'"values": {"Current": 1e0, "Voltage": 230.10}}'
    )
    assert orjson.loads(route("sensors/p/readings", b"{}", PATTERN, LIMIT).value) == {
        "sensor_id": "p"
    }
    # The result parses as a reading like any other.
    full = orjson.dumps(doc)
    parsed = parse_reading(
        route("sensors/pump-003/readings", full, PATTERN, LIMIT).value, list(NORMAL_VALUES), LIMIT
    )
    assert parsed.problems == [] and parsed.sensor_id == "pump-003"


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
def test_a_malformed_payload_is_forwarded_unchanged_for_the_validator(payload: bytes) -> None:
    routed = route("sensors/pump-004/readings", payload, PATTERN, LIMIT)
    assert (routed.key, routed.value, routed.check) == (b"pump-004", payload, None)


def test_an_oversized_payload_is_rejected_before_parsing() -> None:
    payload = b"{" + b" " * LIMIT + b"}"
    routed = route("sensors/pump-004/readings", payload, PATTERN, LIMIT)
    assert routed.check == TOO_LARGE and str(LIMIT) in routed.detail
    assert route("sensors/p/readings", b"x" * LIMIT, PATTERN, LIMIT).check is None


def test_a_topic_outside_the_pattern_is_rejected_with_a_dead_letter_naming_it() -> None:
    payload = orjson.dumps(reading_doc())
    routed = route("sensors/pump-001/status", payload, PATTERN, LIMIT)
    assert routed.check == TOPIC_MISMATCH and "sensors/pump-001/status" in routed.detail
    source, reasons = rejected_message("sensors/pump-001/status", routed)
    letter = dead_letter(source, "mqtt-gateway", reasons)
    assert letter.source.topic == "mqtt:sensors/pump-001/status"
    assert (letter.source.partition, letter.source.offset) == (-1, -1)
    assert letter.reasons[0].check == TOPIC_MISMATCH
    assert letter.payload == payload.decode() and not letter.payload_truncated


def test_a_dead_letter_of_a_huge_payload_and_topic_stays_small() -> None:
    topic = "sensors/" + "x" * 10_000
    routed = route(topic, b"y" * 5_000_000, PATTERN, LIMIT)
    source, reasons = rejected_message(topic, routed)
    letter = dead_letter(source, "mqtt-gateway", reasons)
    assert letter.payload_truncated and letter.payload_bytes == 5_000_000
    assert len(letter.to_bytes()) < 80 * 1024


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker", "mqtt://broker:1883"),
        ("mqtts://broker", "mqtts://broker:8883"),
        ("broker:1884", "mqtt://broker:1884"),
        ("mqtts://10.0.0.2:9999", "mqtts://10.0.0.2:9999"),
    ],
)
def test_mqtt_urls(url: str, expected: str) -> None:
    assert str(parse_url(url)) == expected


@pytest.mark.parametrize("url", ["http://broker", "mqtt://user:pw@broker", "mqtt://", "mqtt://b:x"])
def test_bad_mqtt_urls_are_refused_without_echoing_a_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_url(url)
    assert "pw" not in str(info.value)


def test_subscription_is_shared_unless_the_group_is_unset() -> None:
    assert subscription(Settings()) == "$share/driftline/sensors/+/readings"
    assert subscription(Settings(mqtt_shared_group=None)) == "sensors/+/readings"


def test_sensor_topic_fills_the_pattern() -> None:
    assert sensor_topic("sensors/{sensor_id}/readings", "pump-1") == "sensors/pump-1/readings"
    with pytest.raises(ConfigurationError):
        sensor_topic("sensors/+/{sensor_id}", "pump-1")
    with pytest.raises(ConfigurationError):
        sensor_topic("sensors/readings", "pump-1")
