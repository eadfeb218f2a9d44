"""The machine's Mosquitto for the MQTT gateway's tests: the system broker at 127.0.0.1:1883,
or a private one with the test's own config (started from Debian's binary on a free port)."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from driftline.platform import procs
from driftline.platform.broker import free_port

SYSTEM_URL = "mqtt://127.0.0.1:1883"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class PrivateMosquitto:
    """``mosquitto -c <conf>`` on a free loopback port; ``extra`` lines go into its config.

    By default it queues without limit for a disconnected session (``max_queued_messages 0``;
    Mosquitto's default of 1000 drops the rest), which the gateway's restart tests rely on.
    """

    def __init__(self, directory: Path, extra: str = "", listener: str | None = None) -> None:
        self.port = free_port()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            (listener or f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
            # Started as root it would switch to the mosquitto user, who cannot read tmp_path.
            + f"user {getpass.getuser()}\n"
            + "persistence false\nmax_queued_messages 0\nlog_dest stderr\n"
            + "log_type error\nlog_type warning\nlog_type notice\n"
            + extra
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> PrivateMosquitto:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with open(self.directory / "mosquitto.log", "ab") as log:
            self.proc = procs.start([binary, "-c", str(self.conf)], stdout=log)
        deadline = time.monotonic() + timeout
        while not reachable("127.0.0.1", self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mosquitto did not start: {self.log_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            procs.stop_group(self.proc, timeout=10)

    def log_text(self) -> str:
        path = self.directory / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def make_tls_files(directory: Path, user: str, password: str) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and a password file."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key, issuer: str, issuer_key, ca: bool):  # type: ignore[no-untyped-def]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        else:
            usage = x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            )  # fmt: skip
            builder = builder.add_extension(usage, critical=True)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("driftline test CA", ca_key, "driftline test CA", ca_key, True)
    server = cert("127.0.0.1", server_key, "driftline test CA", ca_key, False)
    files = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
        "passwd": directory / "passwd",
    }
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    files["passwd"].touch(mode=0o600)
    subprocess.run(  # noqa: S603 - Mosquitto's own tool, fixed argv
        ["mosquitto_passwd", "-b", str(files["passwd"]), user, password], check=True
    )
    return files
