"""`driftline up` with DRIFTLINE_MQTT_URL set runs the MQTT gateway beside the services:
readings published over MQTT reach the raw store, and nothing is left behind at the end."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.mqtt.publisher import MqttPublisher
from driftline.simulate.plans import make_plan
from driftline.simulate.publisher import publish_simulation
from tests.e2e.demo_runs import WITHOUT_LABEL_STUDIO, clean_env, processes_using
from tests.mosquitto import PrivateMosquitto
from tests.processes import port_block
from tests.streams import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


async def test_up_starts_the_mqtt_gateway_when_a_broker_is_set(tmp_path: Path) -> None:
    mosquitto = PrivateMosquitto(tmp_path / "mosquitto").start()
    data_dir = tmp_path / "data"
    client_id = f"up-{uuid.uuid4().hex[:8]}"
    env = clean_env(data_dir) | WITHOUT_LABEL_STUDIO
    env |= {
        "DRIFTLINE_SERVING_PORT": str(port_block(1)),
        "DRIFTLINE_MQTT_URL": mosquitto.url,
        "DRIFTLINE_MQTT_CLIENT_ID": client_id,
    }
    base = port_block()
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "driftline.cli.main",
            "up",
            "--headless",
            "--metrics-base-port",
            str(base),
        ],
        env=env,
        stdout=(tmp_path / "up.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    gateway = f"http://127.0.0.1:{base + 4}/readyz"  # after the four services' ports

    async def ready() -> bool:
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                return (await client.get(gateway)).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        await wait_for(ready, 240, "the platform's mqtt-gateway ready")
        settings = Settings(mqtt_url=mosquitto.url)
        plan = make_plan(load_profile(settings.profile_path).features, sensors=2, count=100)
        publisher = MqttPublisher(settings)
        await publisher.start()
        try:
            await publish_simulation(publisher, "", plan)  # type: ignore[arg-type]
        finally:
            await publisher.stop()
        engine = sa.create_engine(f"sqlite:///{data_dir / 'driftline.db'}")

        def stored() -> int:
            try:
                with engine.connect() as conn:
                    return int(conn.execute(sa.text("SELECT COUNT(*) FROM raw_readings")).scalar())
            except sa.exc.SQLAlchemyError:
                return 0

        try:
            await wait_for(lambda: stored() >= 200, 120, "the MQTT readings stored by ingest")
            assert stored() == 200
        finally:
            engine.dispose()
        assert (data_dir / "logs" / "mqtt-gateway.log").exists()
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        mosquitto.stop()
    assert processes_using(data_dir) == [], "children outlived driftline up"
