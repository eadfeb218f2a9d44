"""The MQTT client (paho-mqtt, MQTT 5) built from settings: TLS, credentials, a persistent
session, and acknowledgements the caller sends itself.

paho-mqtt is the client that lets the application send PUBACK when it chooses
(``manual_ack``), which is what at-least-once into Kafka needs: the broker keeps a message until
the gateway acknowledged it, and the gateway acknowledges only after Kafka did.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from driftline.core.errors import ConfigurationError
from driftline.core.settings import Settings

SCHEMES = {"mqtt": (1883, False), "tcp": (1883, False), "mqtts": (8883, True), "ssl": (8883, True)}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    def __str__(self) -> str:  # what logs show: never credentials
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_url(url: str) -> BrokerAddress:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS). Credentials belong in the
    settings (``DRIFTLINE_MQTT_USERNAME``/``_PASSWORD``), not in the URL."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(f"MQTT URL scheme must be mqtt:// or mqtts://, not {parts.scheme}")
    if parts.username or parts.password:
        raise ConfigurationError(
            "put MQTT credentials in DRIFTLINE_MQTT_USERNAME / DRIFTLINE_MQTT_PASSWORD, "
            "not in the URL (URLs end up in logs)"
        )
    if not parts.hostname:
        raise ConfigurationError("the MQTT URL names no host")
    default_port, tls = SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigurationError(f"bad MQTT port: {exc}") from None
    return BrokerAddress(parts.hostname, port, tls)


def broker_address(settings: Settings) -> BrokerAddress:
    if not settings.mqtt_url:
        raise ConfigurationError("DRIFTLINE_MQTT_URL is not set: which MQTT broker?")
    return parse_url(settings.mqtt_url)


def make_client(
    settings: Settings, client_id: str, *, manual_ack: bool = False
) -> tuple[paho.Client, BrokerAddress]:
    """An MQTT 5 client for the configured broker (not connected yet)."""
    address = broker_address(settings)
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5,
        manual_ack=manual_ack,
    )
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
    if address.tls:
        context = ssl.create_default_context(
            cafile=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
        )
        client.tls_set_context(context)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client, address


def session_properties(settings: Settings) -> Properties:
    """CONNECT properties of the gateway's persistent session."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = settings.mqtt_session_expiry_seconds
    props.ReceiveMaximum = settings.mqtt_receive_maximum
    return props


def subscription(settings: Settings) -> str:
    """The topic filter to subscribe to: shared (``$share/<group>/<filter>``) when a group is
    set, so replicas split the messages."""
    if settings.mqtt_shared_group:
        return f"$share/{settings.mqtt_shared_group}/{settings.mqtt_topic_filter}"
    return settings.mqtt_topic_filter
