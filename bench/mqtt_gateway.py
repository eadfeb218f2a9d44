"""MQTT gateway throughput: readings/s (and per core) through the real mqtt-gateway service,
from Mosquitto to the raw topic of the embedded broker, beside a bare MQTT subscriber that only
receives the same messages (the limit), in one run.

Each target first subscribes (QoS 1, persistent session, the gateway's shared subscription,
the same Receive Maximum) and disconnects; then ``--readings`` simulated readings of 20 sensors
are published to a private Mosquitto (the machine's binary, queueing without limit), which holds
them for the offline session; then the target reconnects and drains them. Its window runs from
its first message to its last: the bare subscriber's own clock, and the gateway's from its
/metrics polled every 20 ms (received > 0 to forwarded = all, every message acknowledged to
MQTT after Kafka acknowledged it). CPU seconds (user + system, all threads) are the target
process's over its window; readings/s per core = readings / CPU seconds. Mosquitto and the
broker use CPU too, counted for no target. Every target runs ``--repeats`` times; the table
shows medians; "x bare" is readings/s over the bare subscriber's.

    .venv/bin/python bench/mqtt_gateway.py [--readings 50000] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.mqtt.client import make_client, session_properties, subscription
from driftline.mqtt.publisher import MqttPublisher
from driftline.platform.broker import EmbeddedBroker, free_port
from driftline.platform.services import service_script
from driftline.simulate.plans import make_plan
from driftline.simulate.publisher import publish_simulation
from driftline.streaming.kafka import ensure_topics

console = Console(width=110, stderr=True)
SENSORS = 20

BARE = r"""
import json, sys, time
import paho.mqtt.client as paho
from driftline.mqtt.client import make_client, session_properties, subscription
from driftline.core.settings import Settings

settings, expected = Settings(), int(sys.argv[1])
client, address = make_client(settings, settings.mqtt_client_id)
state = {"n": 0, "first": None}

def on_connect(c, u, flags, reason, props):
    c.subscribe(subscription(settings), qos=1)

def on_message(c, u, msg):
    if state["first"] is None:
        state["first"] = (time.perf_counter(), time.process_time())
    state["n"] += 1
    if state["n"] >= expected:
        c.disconnect()

client.on_connect, client.on_message = on_connect, on_message
client.connect(address.host, address.port, clean_start=False,
               properties=session_properties(settings))
client.loop_forever()
wall, cpu = state["first"]
print(json.dumps({"readings": state["n"] - 1, "seconds": time.perf_counter() - wall,
                  "cpu_seconds": time.process_time() - cpu}))
"""


def mosquitto(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
        "persistence false\nmax_queued_messages 0\nlog_dest none\n"
    )
    proc = subprocess.Popen([shutil.which("mosquitto") or "mosquitto", "-c", str(conf)])  # noqa: S603
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


async def publish(settings: Settings, readings: int, seed: int) -> None:
    profile = load_profile(settings.profile_path)
    plan = make_plan(profile.features, sensors=SENSORS, count=readings // SENSORS, seed=seed)
    publisher = MqttPublisher(settings)
    await publisher.start()
    try:
        await publish_simulation(publisher, "", plan)  # type: ignore[arg-type]
    finally:
        await publisher.stop()


def subscribe_once(settings: Settings) -> None:
    """Create the persistent session (and its subscription), then leave."""
    client, address = make_client(settings, settings.mqtt_client_id)
    client.on_connect = lambda c, *_: c.subscribe(subscription(settings), qos=1)
    client.on_subscribe = lambda c, *_: c.disconnect()
    client.connect(
        address.host, address.port, clean_start=False, properties=session_properties(settings)
    )
    client.loop_forever()


def run_bare(settings: Settings, readings: int, seed: int) -> dict[str, float]:
    subscribe_once(settings)
    asyncio.run(publish(settings, readings, seed))
    env = {**os.environ, **settings.to_env()}
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", BARE, str(readings)], env=env, capture_output=True, check=True
    )
    return json.loads(out.stdout)


def gateway_metrics(port: int) -> dict[str, float]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:  # noqa: S310
            text = r.read().decode()
    except OSError:
        return {}
    return {
        s.name: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("driftline_mqtt_messages")
    }


def run_gateway(settings: Settings, readings: int, seed: int, log: Path) -> dict[str, float]:
    port = settings.metrics_port
    assert port is not None
    env = {**os.environ, **settings.to_env()}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, str(service_script("mqtt-gateway"))],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    first = start()  # subscribes (the session), then stops: the broker keeps the session
    while gateway_metrics(port).get("driftline_mqtt_messages_in_flight") is None:
        time.sleep(0.1)
    time.sleep(1.0)
    first.terminate()
    first.wait(30)
    asyncio.run(publish(settings, readings, seed))
    proc = start()
    ps = psutil.Process(proc.pid)
    try:
        while True:
            m = gateway_metrics(port)
            if m.get("driftline_mqtt_messages_received_total", 0) > 0:
                t0, cpu0, n0 = (
                    time.perf_counter(),
                    sum(ps.cpu_times()[:4]),
                    m["driftline_mqtt_messages_received_total"],
                )
                break
            time.sleep(0.02)
        deadline = time.monotonic() + 300
        while gateway_metrics(port).get("driftline_mqtt_messages_forwarded_total", 0) < readings:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the gateway did not forward every reading: {gateway_metrics(port)}"
                )
            time.sleep(0.02)
        seconds, cpu = time.perf_counter() - t0, sum(ps.cpu_times()[:4]) - cpu0
    finally:
        proc.terminate()
        proc.wait(30)
    return {"readings": readings - n0, "seconds": seconds, "cpu_seconds": cpu}


def target_settings(kafka: EmbeddedBroker, mqtt_port: int, tmp: Path, kind: str) -> Settings:
    """Settings of one target's run: its own topics, MQTT session and shared group (sessions
    of one group split the messages, even offline ones)."""
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_session_timeout_ms=2000,
        topic_prefix=f"b{run}",
        data_dir=tmp / "data",
        mqtt_url=f"mqtt://127.0.0.1:{mqtt_port}",
        mqtt_client_id=f"{kind}-{run}",
        mqtt_topic_filter=f"b{run}/sensors/+/readings",
        mqtt_topic_pattern=f"b{run}/sensors/{{sensor_id}}/readings",
        mqtt_shared_group=f"g{run}",
        metrics_host="127.0.0.1",
        metrics_port=free_port(),
        log_level="WARNING",
    )
    asyncio.run(ensure_topics(settings, Topics(settings.topic_prefix).all()))
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 readings, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.readings, args.repeats = 20_000, 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    mqtt, mqtt_port = mosquitto(tmp)
    kafka = EmbeddedBroker(log_path=tmp / "broker.log").start()
    results: dict[str, list[dict[str, float]]] = {"bare subscriber": [], "mqtt-gateway": []}
    try:
        for i in range(args.repeats):
            bare = target_settings(kafka, mqtt_port, tmp, "bare")
            gw = target_settings(kafka, mqtt_port, tmp, "gw")
            results["bare subscriber"].append(run_bare(bare, args.readings, i))
            results["mqtt-gateway"].append(run_gateway(gw, args.readings, i, tmp / "gw.log"))
            console.print(
                f"repeat {i + 1}: {results['bare subscriber'][-1]} {results['mqtt-gateway'][-1]}"
            )
    finally:
        kafka.stop()
        mqtt.terminate()
        mqtt.wait()
    report(results, args)


def report(results: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> None:
    from importlib.metadata import version

    table = Table(
        title=f"MQTT -> Kafka, {args.readings:,} readings of {SENSORS} sensors, "
        f"median of {args.repeats}"
    )
    for col in ("target", "readings/s", "readings/s per core", "x bare", "goal"):
        table.add_column(col, justify="right" if col != "target" else "left")
    rate = {
        name: statistics.median(r["readings"] / r["seconds"] for r in runs)
        for name, runs in results.items()
    }
    for name, runs in results.items():
        per_core = statistics.median(r["readings"] / r["cpu_seconds"] for r in runs)
        ratio = rate[name] / rate["bare subscriber"]
        goal = (
            ""
            if name.startswith("bare")
            else (">= 0.5x: " + ("met" if ratio >= 0.5 else "NOT met"))
        )
        table.add_row(name, f"{rate[name]:,.0f}", f"{per_core:,.0f}", f"{ratio:.2f}", goal)
    Console(width=110).print(table)
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[
        0
    ]  # noqa: S603, S607
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores; "
        f"paho-mqtt {version('paho-mqtt')}, aiokafka {version('aiokafka')}; {mosq}; "
        "Kafka: the embedded broker (Tansu)"
    )


if __name__ == "__main__":
    main()
