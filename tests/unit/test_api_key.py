"""ApiKeyGuard: which paths need the key, and which headers carry it."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from driftline.serving.api_key import ApiKeyGuard

KEY = "k3y"


def test_without_a_key_nothing_is_guarded() -> None:
    guard = ApiKeyGuard(None)
    assert not guard.enabled
    assert not guard.needs_key("/predict")
    assert guard.allows([])


@pytest.mark.parametrize("path", ["/predict", "/model", "/", "/schema.json", "/anything-new"])
def test_every_route_but_probes_metrics_and_docs_needs_the_key(path: str) -> None:
    assert ApiKeyGuard(SecretStr(KEY)).needs_key(path)


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/healthz", "/metrics", "/docs.json"])
def test_probes_metrics_and_the_openapi_document_stay_open(path: str) -> None:
    assert not ApiKeyGuard(SecretStr(KEY)).needs_key(path)


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ([(b"authorization", b"Bearer k3y")], True),
        ([(b"authorization", b"bearer  k3y ")], True),
        ([(b"x-api-key", b"k3y")], True),
        ([(b"X-API-Key", b"k3y")], True),
        ([(b"x-api-key", b"nope"), (b"authorization", b"Bearer k3y")], True),
        ([], False),
        ([(b"authorization", b"k3y")], False),
        ([(b"authorization", b"Basic k3y")], False),
        ([(b"authorization", b"Bearer k3")], False),
        ([(b"x-api-key", b"")], False),
        ([(b"x-api-key", b"K3Y")], False),
        ([(b"api-key", b"k3y")], False),
    ],
)
def test_the_key_comes_as_a_bearer_token_or_in_x_api_key(
    headers: list[tuple[bytes, bytes]], allowed: bool
) -> None:
    assert ApiKeyGuard(SecretStr(KEY)).allows(headers) is allowed
