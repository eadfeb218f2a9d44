"""Kafka's TLS and SASL settings reach every client Driftline makes (producer, consumer, admin):
checked on the aiokafka clients themselves, which are made but not started (no broker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from driftline.core.settings import Settings
from driftline.streaming.kafka import client_options, make_consumer, make_producer

CAFILE = Path(certifi.where())


def settings(**values: object) -> Settings:
    return Settings(kafka_bootstrap_servers="kafka-1:9093,kafka-2:9093", **values)  # type: ignore[arg-type]


def test_plaintext_by_default() -> None:
    opts = client_options(settings())
    assert opts == {
        "bootstrap_servers": "kafka-1:9093,kafka-2:9093",
        "security_protocol": "PLAINTEXT",
    }


def test_sasl_ssl_options() -> None:
    opts = client_options(
        settings(
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="driftline",
            kafka_sasl_password="s3cret",
            kafka_ssl_cafile=CAFILE,
        )
    )
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "driftline"
    assert opts["sasl_plain_password"] == "s3cret"  # the secret's value, not its mask
    context = opts["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # the CA file was loaded


def test_ssl_without_sasl() -> None:
    opts = client_options(settings(kafka_security_protocol="SSL"))
    assert isinstance(opts["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in opts


def test_a_missing_ca_file_fails_at_once(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        client_options(
            settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "none.pem")
        )


async def test_options_reach_the_aiokafka_clients() -> None:
    s = settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="driftline",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile=CAFILE,
    )
    admin = AIOKafkaAdminClient(**client_options(s))
    clients = [
        make_producer(s).client,
        make_consumer(s, "g", ["t"])._client,  # noqa: SLF001 - what the consumer connects with
        admin._client,  # noqa: SLF001
    ]
    for client in clients:
        assert client._bootstrap_servers == "kafka-1:9093,kafka-2:9093"  # noqa: SLF001
        assert client._security_protocol == "SASL_SSL"  # noqa: SLF001
        assert client._sasl_mechanism == "PLAIN"  # noqa: SLF001
        assert client._sasl_plain_username == "driftline"  # noqa: SLF001
        assert client._sasl_plain_password == "s3cret"  # noqa: SLF001
        assert isinstance(client._ssl_context, ssl.SSLContext)  # noqa: SLF001
    await admin.close()
