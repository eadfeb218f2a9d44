"""Schemathesis against a real ``bentoml serve`` (its OpenAPI document at /docs.json) with a
champion loaded as in test_serving: generated requests, valid and malformed, to every
operation; none may get a server error (5xx). Malformed input is the client's fault: 4xx.
Hostile bodies (``tests.hostile_bodies``) too, each followed by a good reading that must
still be scored."""

from __future__ import annotations

import types
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from driftline.core.profile import load_profile
from driftline.core.settings import DEFAULT_PROFILE
from tests.fuzz_messages import message_cases
from tests.hostile_bodies import HOSTILE_EXAMPLES, hostile_bodies
from tests.integration.test_serving import wire
from tests.integration.test_serving_auth import serving_a_champion

pytestmark = pytest.mark.integration

PROFILE = load_profile(DEFAULT_PROFILE)
EXAMPLES = 100  # per operation, of each generation mode (positive and negative)
calls: Counter[str] = Counter()


@pytest.fixture(scope="module")
def server(
    kafka_bootstrap: str, skab_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[types.SimpleNamespace]:
    with serving_a_champion(
        kafka_bootstrap, skab_dir, tmp_path_factory.mktemp("serving_fuzz"), {}
    ) as env:
        yield env


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def test_no_generated_request_gets_a_server_error(
    server: types.SimpleNamespace, http: requests.Session
) -> None:
    # schemathesis.pytest.from_fixture (the lazy loader a schema known only at run time needs)
    # fails on pytest 9 (it sets Function._nodeid); so each operation's strategy, per
    # generation mode, drives a Hypothesis test here.
    schema = schemathesis.openapi.from_url(f"{server.base}/docs.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert any(op.path == "/predict" for op in operations), [op.path for op in operations]
    for operation in operations:
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case: schemathesis.Case) -> None:
                response = case.call(base_url=server.base, session=http, timeout=30)
                calls[f"{case.method} {case.path} {response.status_code}"] += 1
                case.validate_response(response, checks=[not_a_server_error])

            try:
                no_server_error()
            except Unsatisfiable:
                # An operation with nothing to send (GET /livez) has no malformed request.
                assert mode is GenerationMode.NEGATIVE, operation.path


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # shrinking would replay HTTP calls; the assertion names the body
    suppress_health_check=list(HealthCheck),
)
@given(data=st.data())
def test_generated_wire_format_bodies_get_4xx_or_predictions(
    server: types.SimpleNamespace, http: requests.Session, data: st.DataObject
) -> None:
    """The OpenAPI document describes the inner API (``{"readings": [...]}``), not the wire
    format the middleware takes, so schemathesis seldom reaches the validator: the
    generated messages of the stream fuzz tests, as bodies of one reading and as lists."""
    cases = data.draw(
        message_cases(
            PROFILE,
            datetime.now(UTC),
            uuid.uuid4().hex[:8],
            max_bytes=64 * 1024,
            min_size=1,
            max_size=30,
        )
    )
    headers = {"content-type": "application/json"}
    for case in cases:  # each message alone, as the raw body
        response = http.post(f"{server.base}/predict", data=case.value or b"", headers=headers)
        calls[f"POST /predict (wire format) {response.status_code}"] += 1
        assert response.status_code in (200, 400, 413, 422), (case, response.text)
        if case.valid is True:
            assert response.status_code == 200, (case, response.text)
        elif case.valid is False and case.kind != "too_large":
            # (Serving's size limit is the body's, 8 MiB: a reading padded with whitespace
            # past the validator's message limit is still one reading to it.)
            assert response.status_code in (400, 422), (case, response.text)
    docs = [c.doc for c in cases if c.doc is not None]
    if docs:  # the valid ones together: one request, every reading scored
        response = http.post(f"{server.base}/predict", json=docs)
        calls[f"POST /predict (wire format, list) {response.status_code}"] += 1
        assert response.status_code == 200, response.text
        assert len(response.json()) == len(docs)


def test_hostile_bodies_get_4xx_and_the_next_good_reading_is_scored(
    server: types.SimpleNamespace, http: requests.Session
) -> None:
    """Every kind of issue 13's table, generated; the client's timeout (10 s, a third of
    BentoML's) turns a hang into a failure. None is logged as a failure of ours."""
    log_start = server.log.stat().st_size
    sensor = f"skab-hostile-{uuid.uuid4().hex[:6]}"
    start = datetime.now(UTC) - timedelta(hours=1)
    good = iter(wire(server.scored.head(1000), sensor, start))
    headers = {"content-type": "application/json"}
    first = next(good)

    @settings(
        max_examples=HOSTILE_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile=hostile_bodies(first))
    def refused_and_harmless(hostile: Any) -> None:
        response = http.post(f"{server.base}/predict", data=hostile.body, headers=headers,
                             timeout=10)  # fmt: skip
        calls[f"POST /predict (hostile {hostile.kind}) {response.status_code}"] += 1
        assert response.status_code in (400, 422), (hostile, response.text[:500])
        reasons = response.json()["readings"][0]["reasons"]
        assert reasons and all(r["check"] and r["detail"] for r in reasons), reasons
        reading = next(good)
        after = http.post(f"{server.base}/predict", json=reading, timeout=10)
        assert after.status_code == 200, (hostile, after.text[:500])
        assert after.json()["seq"] == reading["seq"]

    refused_and_harmless()
    written = server.log.read_bytes()[log_start:].decode(errors="replace")
    assert "Traceback" not in written and "ERROR" not in written, written[-3000:]


def test_zz_report_counts() -> None:
    print(f"\nschemathesis: {sum(calls.values())} requests: {dict(sorted(calls.items()))}")
