"""Serving before the first champion, as in ``driftline up`` (whose monitor asks for a
prediction every second): each request gets 503 at once, and the log says so once, not with a
traceback per request; once a champion is promoted it scores, and says so once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.integration.test_model_steps import module_settings
from tests.integration.test_serving import wire
from tests.integration.test_serving_auth import promote_a_champion, serving_process

pytestmark = pytest.mark.integration


def test_no_champion_is_503_logged_once_until_one_is_promoted(
    kafka_bootstrap: str, skab_dir: Path, tmp_path: Path
) -> None:
    settings = module_settings(kafka_bootstrap, tmp_path)
    log = tmp_path / "serve.log"
    # The alias poll is slow here: the promotion event on Kafka must bring the champion.
    env = {"DRIFTLINE_SERVING_POLL_SECONDS": "600"}
    with serving_process(settings, env, log, ready=False) as base:
        assert httpx.get(f"{base}/readyz", timeout=10).status_code != 200
        start = datetime.now(UTC) - timedelta(minutes=30)
        for i in range(20):
            reading = {"sensor_id": "skab-no-model", "ts": (start + timedelta(seconds=i))
                       .isoformat(), "values": {}}  # fmt: skip
            response = httpx.post(f"{base}/predict", json=reading, timeout=10)
            assert response.status_code == 503, response.text
            assert response.json() == {
                "error": "unavailable",
                "detail": "no champion model is loaded yet",
            }
            assert int(response.headers["retry-after"]) > 0
        frame = promote_a_champion(settings, skab_dir)
        readings = wire(frame.head(3), "skab-no-model", start + timedelta(minutes=1))
        deadline = time.monotonic() + 60
        while (status := httpx.post(f"{base}/predict", json=readings, timeout=10).status_code) \
                == 503 and time.monotonic() < deadline:  # fmt: skip
            time.sleep(0.5)
        assert status == 200
        assert httpx.get(f"{base}/readyz", timeout=10).status_code == 200
    text = log.read_text(errors="replace")
    assert text.count("answering 503: no champion model is loaded yet") == 1, text[-4000:]
    assert text.count("scoring: scoring again") == 1, text[-4000:]
    assert "Traceback" not in text and "NoModel" not in text, text[-4000:]
