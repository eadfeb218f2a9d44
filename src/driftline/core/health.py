"""Liveness and readiness of a service process, served beside /metrics on the metrics port.

``/livez`` answers 200 while the process runs. ``/readyz`` answers 200 only when every service
of the process has its Kafka consumer connected and assigned, and each of its dependencies
(the database for ingest and the trigger) answered its last check within ``stale_after``
seconds; otherwise 503 with a JSON body giving the reasons. The runtime loop sets this state;
the HTTP server only reads it, from its own thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from driftline.core import metrics

log = logging.getLogger(__name__)

KAFKA = "kafka"
STREAM = "stream"  # the reason given while the consumer loop is stalled on one batch


@dataclass
class _Check:
    ok: bool = False
    reason: str = "not checked yet"
    at: float = 0.0  # monotonic time of the last answer (success or failure)


@dataclass
class ServiceHealth:
    """The readiness of one service: Kafka and each named dependency, each checked by the
    runtime. A dependency whose last good answer is older than ``stale_after`` counts as down."""

    name: str
    dependencies: tuple[str, ...] = ()
    stale_after: float = 30.0
    clock: Callable[[], float] = time.monotonic  # tests step it instead of sleeping
    _checks: dict[str, _Check] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _was_ready: bool = False
    _stalled: str | None = None

    def __post_init__(self) -> None:
        for dep in (KAFKA, *self.dependencies):
            self._checks[dep] = _Check()
            metrics.dependency_failures.labels(self.name, dep)  # exported at 0 from the start
        metrics.service_ready.labels(self.name).set(0)

    def ok(self, dependency: str) -> None:
        with self._lock:
            self._checks[dependency] = _Check(True, "ok", self.clock())
        self._publish()

    def failed(self, dependency: str, reason: str) -> None:
        """Record a failed check (counted) of ``dependency``."""
        metrics.dependency_failures.labels(self.name, dependency).inc()
        self.down(dependency, reason)

    def down(self, dependency: str, reason: str) -> None:
        """Mark ``dependency`` unavailable without counting a failure (e.g. while starting)."""
        with self._lock:
            self._checks[dependency] = _Check(False, reason, self.clock())
        self._publish()

    def stall(self, reason: str) -> None:
        """The stream has not moved: the batch in hand keeps failing (see error_policy)."""
        with self._lock:
            self._stalled = reason
        self._publish()

    def resume(self) -> None:
        with self._lock:
            self._stalled = None
        self._publish()

    def dependencies_ready(self) -> bool:
        """Whether Kafka and every dependency answered, stalled or not."""
        return not (self.reasons().keys() - {STREAM})

    def reasons(self) -> dict[str, str]:
        """Why the service is not ready, by dependency (empty when it is ready)."""
        now = self.clock()
        with self._lock:
            checks = dict(self._checks)
            stalled = self._stalled
        out: dict[str, str] = {} if stalled is None else {STREAM: stalled}
        for dep, check in checks.items():
            if not check.ok:
                out[dep] = check.reason
            elif now - check.at > self.stale_after:
                out[dep] = f"no answer for {now - check.at:.0f}s"
        return out

    def ready(self) -> bool:
        return not self.reasons()

    def _publish(self) -> None:
        reasons = self.reasons()
        metrics.service_ready.labels(self.name).set(0 if reasons else 1)
        was, self._was_ready = self._was_ready, not reasons
        if was and reasons:
            log.warning(
                "%s not ready: %s", self.name, "; ".join(f"{k}: {v}" for k, v in reasons.items())
            )
        elif not was and not reasons:
            log.info("%s ready", self.name)


class HealthRegistry:
    """The services of this process (usually one) whose readiness /readyz reports."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceHealth] = {}
        self._lock = threading.Lock()

    def register(self, health: ServiceHealth) -> ServiceHealth:
        with self._lock:
            self._services[health.name] = health
        return health

    def unregister(self, health: ServiceHealth) -> None:
        with self._lock:
            if self._services.get(health.name) is health:
                del self._services[health.name]
        metrics.service_ready.labels(health.name).set(0)

    def status(self) -> tuple[bool, dict[str, Any]]:
        with self._lock:
            services = list(self._services.values())
        if not services:
            return False, {"ready": False, "reason": "no service running yet"}
        body: dict[str, Any] = {"services": {}}
        for s in services:
            reasons = s.reasons()
            metrics.service_ready.labels(s.name).set(0 if reasons else 1)
            body["services"][s.name] = {"ready": not reasons, "reasons": reasons}
        body["ready"] = all(v["ready"] for v in body["services"].values())
        return body["ready"], body


registry = HealthRegistry()

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def make_app(health: HealthRegistry) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app: /livez, /readyz, and Prometheus's /metrics for everything else."""
    prometheus = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/livez":
            return _json(start_response, 200, {"alive": True})
        if path == "/readyz":
            ready, body = health.status()
            return _json(start_response, 200 if ready else 503, body)
        return prometheus(environ, start_response)

    return app


def _json(start_response: StartResponse, code: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    status = {200: "200 OK", 503: "503 Service Unavailable"}[code]
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Probes come every few seconds: no access log line for each."""


def serve(host: str, port: int | None, health: HealthRegistry = registry) -> WSGIServer | None:
    """Serve /metrics, /livez and /readyz on ``host:port`` in a daemon thread (None: not at all)."""
    if port is None:
        return None
    server = make_server(
        host, port, make_app(health), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    log.info("serving /metrics, /livez and /readyz on %s:%d", host, port)
    return server
