"""`driftline broker`: starts Tansu, records where, and never leaves it running behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from driftline.core.settings import Settings
from driftline.platform.broker import broker_binary
from driftline.streaming.kafka import ensure_topics, make_producer
from tests.streams import read_topic

pytestmark = pytest.mark.integration


def tansu_pids(listening_on: str | None = None) -> set[int]:
    """Tansu brokers on this machine; only those listening on ``listening_on`` (host:port) if
    given: other tests (pytest-xdist workers) start brokers of their own meanwhile."""
    binary = str(broker_binary())
    listener = f"tcp://{listening_on}".encode()
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv[0].decode() == binary and (listening_on is None or listener in argv):
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def start_broker(data_dir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    env["DRIFTLINE_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "driftline.cli.main", "broker", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_for_file(path: Path, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)
    return json.loads(path.read_text())


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_broker_serves_and_stops_with_its_command(tmp_path, how):
    before = tansu_pids()
    proc = start_broker(tmp_path)
    try:
        servers = wait_for_file(tmp_path / "broker.json")["bootstrap_servers"]
        started = tansu_pids(listening_on=servers) - before
        assert len(started) == 1

        async def round_trip() -> list[bytes]:
            settings = Settings(kafka_bootstrap_servers=servers, topic_partitions=1)
            await ensure_topics(settings, ["roundtrip"])
            producer = make_producer(settings)
            await producer.start()
            await (await producer.send("roundtrip", b"hello", key=b"k"))
            await producer.stop()
            return [m.value for m in await read_topic(settings, "roundtrip")]

        assert asyncio.run(round_trip()) == [b"hello"]
        proc.send_signal(how)
        proc.wait(15)
        deadline = time.monotonic() + 10
        while tansu_pids() & started and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not tansu_pids() & started, f"the broker outlived its command ({how.name})"
        if how != signal.SIGKILL:
            assert proc.returncode == 0
            assert not (tmp_path / "broker.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_brokers_started_at_once_on_a_fresh_machine_all_start(tmp_path: Path) -> None:
    """The first use copies Tansu out of the wheel. Test workers starting their brokers at the
    same moment on a fresh machine once raced on that copy: one's exec found the file that
    another had just replaced and not yet made executable (EACCES)."""
    start = (
        "import subprocess, sys\n"
        "from driftline.platform.broker import broker_binary\n"
        "run = subprocess.run([str(broker_binary()), '--help'], capture_output=True)\n"
        "sys.exit(run.returncode)\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}  # an empty ~/.calfkit, as on a fresh machine
    env.pop("CALF_TANSU_BIN", None)
    procs = [subprocess.Popen([sys.executable, "-c", start], env=env) for _ in range(8)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 8
    assert (tmp_path / ".calfkit" / "bin").is_dir()
