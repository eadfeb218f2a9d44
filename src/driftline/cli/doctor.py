"""``driftline doctor``: is every dependency the settings name reachable from here?

Each check connects the way the services do (Kafka with the same security settings, the
database with its URL, HTTP services on their health endpoints), with a short timeout, and
reports one row; none changes anything.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from driftline.core.logs import redact
from driftline.core.settings import Settings

Status = Literal["yes", "no", "not set"]
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class DependencyCheck:
    dependency: str
    where: str
    reachable: Status
    detail: str = ""


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text)[:160]


def check_kafka(settings: Settings) -> DependencyCheck:
    from aiokafka.admin import AIOKafkaAdminClient

    from driftline.core.errors import BrokerError
    from driftline.streaming.kafka import client_options

    try:
        options = client_options(settings)
    except BrokerError as exc:
        return DependencyCheck("Kafka", "(embedded broker)", "not set", _short(exc))
    where = options["bootstrap_servers"]
    if settings.kafka_sasl_mechanism:
        where += f" ({settings.kafka_security_protocol}, {settings.kafka_sasl_mechanism})"

    async def probe() -> int:
        admin = AIOKafkaAdminClient(**options, request_timeout_ms=int(TIMEOUT_SECONDS * 1000))
        try:
            await asyncio.wait_for(admin.start(), TIMEOUT_SECONDS)
            return len(await asyncio.wait_for(admin.list_topics(), TIMEOUT_SECONDS))
        finally:
            await admin.close()

    try:
        topics = asyncio.run(probe())
    except Exception as exc:  # noqa: BLE001  # any failure is the answer: not reachable
        return DependencyCheck("Kafka", where, "no", _short(exc) or "timed out")
    return DependencyCheck("Kafka", where, "yes", f"{topics} topics")


def check_database(name: str, url: str) -> DependencyCheck:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    where = redact(url)
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        path = Path(parsed.database or "")
        if not path.is_file():
            if path.parent.is_dir() or not path.parent.exists():
                # The file (and the data directory) are made on first use.
                return DependencyCheck(name, where, "yes", "SQLite, not created yet")
            return DependencyCheck(name, where, "no", f"{path.parent} is not a directory")
        args: dict[str, object] = {"timeout": TIMEOUT_SECONDS}
    else:
        args = {"connect_timeout": int(TIMEOUT_SECONDS)}
    engine = create_engine(parsed, connect_args=args)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        return DependencyCheck(name, where, "no", _short(exc))
    finally:
        engine.dispose()
    return DependencyCheck(name, where, "yes", parsed.get_backend_name())


def check_http(name: str, base: str, path: str, detail_if_up: str = "") -> DependencyCheck:
    """GET base+path: reachable if anything HTTP answers; the status says the rest."""
    url = base.rstrip("/") + path
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # nosec B310  # the operator's own URL
            return DependencyCheck(
                name, redact(base), "yes", detail_if_up or f"{path} {response.status}"
            )
    except urllib.error.HTTPError as exc:
        return DependencyCheck(name, redact(base), "yes", f"{path} answered {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return DependencyCheck(name, redact(base), "no", _short(reason))


def check_mlflow(settings: Settings) -> DependencyCheck:
    uri = settings.resolved_mlflow_uri
    if uri.startswith(("http://", "https://")):
        return check_http("MLflow", uri, "/health")
    if "://" in uri and not uri.startswith("file:"):
        return check_database("MLflow", uri)
    return DependencyCheck("MLflow", redact(uri), "yes", "a local store (no server)")


def check_serving(settings: Settings) -> DependencyCheck:
    url = settings.serving_url
    if not url:
        return DependencyCheck("serving", "", "not set", "DRIFTLINE_SERVING_URL")
    check = check_http("serving", url, "/livez")
    if check.reachable != "yes":
        return check
    ready = check_http("serving", url, "/readyz")
    return DependencyCheck(
        "serving", check.where, "yes", "ready" if ready.detail.endswith("200") else "no model yet"
    )


def check_label_studio(settings: Settings) -> DependencyCheck | None:
    # Label Studio's settings arrive with the labelling feature: checked when there.
    url = getattr(settings, "label_studio_url", None)
    if url is None:
        return None
    return check_http("Label Studio", str(url), "/health")


def run_checks(settings: Settings) -> list[DependencyCheck]:
    checks: list[Callable[[], DependencyCheck | None]] = [
        lambda: check_kafka(settings),
        lambda: check_database("database", settings.resolved_database_url),
        lambda: (
            check_database("database (read-only)", settings.resolved_readonly_url)
            if settings.database_readonly_url is not None
            else None
        ),
        lambda: check_mlflow(settings),
        lambda: check_serving(settings),
        lambda: check_label_studio(settings),
    ]
    return [result for check in checks if (result := check()) is not None]


def render(results: list[DependencyCheck]) -> str:
    rows = [("dependency", "where", "reachable", "detail")]
    rows += [(r.dependency, r.where, r.reachable, r.detail) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + f"  {row[3]}"
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)
