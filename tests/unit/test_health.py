"""/livez, /readyz and /metrics of a service process, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from driftline.core.health import KAFKA, HealthRegistry, ServiceHealth, serve


@pytest.fixture
def health() -> Iterator[tuple[HealthRegistry, str]]:
    registry = HealthRegistry()
    server = serve("127.0.0.1", 0, registry)
    assert server is not None
    try:
        yield registry, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def ready_gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value("driftline_service_ready", {"service": name})


def test_nothing_served_without_a_port() -> None:
    assert serve("127.0.0.1", None) is None


def test_alive_but_not_ready_before_a_service_runs(health) -> None:
    _, base = health
    assert httpx.get(f"{base}/livez").status_code == 200
    response = httpx.get(f"{base}/readyz")
    assert response.status_code == 503
    assert response.json()["ready"] is False


def test_ready_only_when_kafka_and_every_dependency_answer(health) -> None:
    registry, base = health
    service = registry.register(ServiceHealth("svc-a", ("database",), stale_after=60))
    service.down(KAFKA, "connecting")
    body = httpx.get(f"{base}/readyz").json()
    assert body["services"]["svc-a"]["reasons"] == {
        "kafka": "connecting",
        "database": "not checked yet",
    }
    assert ready_gauge("svc-a") == 0

    service.ok(KAFKA)
    service.ok("database")
    response = httpx.get(f"{base}/readyz")
    assert response.status_code == 200, response.text
    assert ready_gauge("svc-a") == 1

    before = REGISTRY.get_sample_value(
        "driftline_dependency_failures_total", {"service": "svc-a", "dependency": "database"}
    )
    service.failed("database", "OperationalError: connection refused")
    response = httpx.get(f"{base}/readyz")
    assert response.status_code == 503
    assert response.json()["services"]["svc-a"]["reasons"] == {
        "database": "OperationalError: connection refused"
    }
    assert ready_gauge("svc-a") == 0
    after = REGISTRY.get_sample_value(
        "driftline_dependency_failures_total", {"service": "svc-a", "dependency": "database"}
    )
    assert after == (before or 0) + 1


def test_an_old_answer_counts_as_none(health) -> None:
    registry, base = health
    now = [100.0]
    service = registry.register(ServiceHealth("svc-b", stale_after=0.2, clock=lambda: now[0]))
    service.ok(KAFKA)
    assert httpx.get(f"{base}/readyz").status_code == 200
    now[0] += 0.3
    response = httpx.get(f"{base}/readyz")
    assert response.status_code == 503
    assert "no answer for" in response.json()["services"]["svc-b"]["reasons"]["kafka"]
    assert ready_gauge("svc-b") == 0


def test_metrics_served_beside(health) -> None:
    registry, base = health
    registry.register(ServiceHealth("svc-c"))
    response = httpx.get(f"{base}/metrics")
    assert response.status_code == 200
    assert 'driftline_service_ready{service="svc-c"} 0.0' in response.text
    assert "driftline_dependency_failures_total" in response.text
