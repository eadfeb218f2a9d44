"""Serving's optional API key: which requests need it, and whether a request carries it.

With ``DRIFTLINE_SERVING_API_KEY`` set, every route but the probes, the metrics and the OpenAPI
document needs ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``. Default-deny, so an API
added later is protected without anyone remembering to. The key is compared in constant time
and never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from pydantic import SecretStr

# Open to probes, Prometheus and API tooling: they carry no secret and reveal no data.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json"})


class ApiKeyGuard:
    def __init__(self, key: SecretStr | None, open_paths: Iterable[str] = OPEN_PATHS) -> None:
        self._key = None if key is None else key.get_secret_value().encode()
        self.open_paths = frozenset(open_paths)

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def needs_key(self, path: str) -> bool:
        return self._key is not None and path not in self.open_paths

    def allows(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Whether the headers carry the key (either header form; any one that matches)."""
        if self._key is None:
            return True
        ok = False
        for name, value in headers:
            candidate = _candidate(name.lower(), value)
            # Every candidate is compared, matching or not: no early exit to time.
            if candidate is not None and hmac.compare_digest(candidate, self._key):
                ok = True
        return ok


def _candidate(name: bytes, value: bytes) -> bytes | None:
    if name == b"x-api-key":
        return value.strip()
    if name == b"authorization":
        scheme, _, credentials = value.strip().partition(b" ")
        if scheme.lower() == b"bearer":
            return credentials.strip()
    return None
