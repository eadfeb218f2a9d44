"""`driftline serve` and `driftline up` stop every process they started, and free their
ports, whether they get SIGTERM, SIGINT or SIGKILL; `up` ends loudly, with a non-zero exit,
when a service stays down."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.demo_runs import WITHOUT_LABEL_STUDIO, clean_env, processes_using
from tests.processes import port_block

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
# Label Studio's processes are stopped with the rest: `up` starts it in the test of stopping
# every process; elsewhere it is off.


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return predicate()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def bindable(port: int) -> bool:
    """Whether a restarted server could listen on the port: with SO_REUSEADDR, as the servers
    set it, so only a listening socket holds it (not the TIME_WAIT connections a busy machine
    may leave behind for a minute after a server closed its side first)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def launch(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        # A session of its own: the signal goes to driftline alone, as `kill <pid>` would.
        return subprocess.Popen(
            [sys.executable, "-m", "driftline.cli.main", *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def assert_nothing_left(data_dir: Path, ports: list[int], log: Path) -> None:
    assert wait_for(lambda: not processes_using(data_dir), 60), (
        f"processes outlived their parent: {processes_using(data_dir)}; "
        + log.read_text(errors="replace")[-2000:]
    )
    for port in ports:
        assert wait_for(lambda p=port: bindable(p), 30), f"port {port} is still held"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_serve_stops_the_server_it_started(tmp_path: Path, sig: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    port = port_block(1)
    log = tmp_path / "serve.log"
    proc = launch(["serve", "--port", str(port)], clean_env(data_dir), log)
    try:
        assert wait_for(lambda: listening(port), 180), log.read_text(errors="replace")[-2000:]
        assert len(processes_using(data_dir)) >= 2  # driftline serve and BentoML's processes
        os.kill(proc.pid, sig)
        proc.wait(60)
        assert_nothing_left(data_dir, [port], log)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.usefixtures("label_studio_installed")  # `up` starts it when installed
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_up_stops_every_process_it_started(tmp_path: Path, sig: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    env = clean_env(data_dir)
    serving_port, metrics = port_block(1), port_block()
    env["DRIFTLINE_SERVING_PORT"] = str(serving_port)
    log = tmp_path / "up.log"
    proc = launch(["up", "--headless", "--metrics-base-port", str(metrics)], env, log)
    try:
        ports = [serving_port, *range(metrics, metrics + 4)]
        assert wait_for(lambda: all(listening(p) for p in ports), 180), log.read_text(
            errors="replace"
        )[-2000:]
        broker = json.loads((data_dir / "broker.json").read_text())["bootstrap_servers"]
        ports.append(int(broker.rsplit(":", 1)[1]))
        os.kill(proc.pid, sig)
        code = proc.wait(60)
        if sig != signal.SIGKILL:
            assert code == 0, log.read_text(errors="replace")[-2000:]
        assert_nothing_left(data_dir, ports, log)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_up_exits_non_zero_when_a_service_stays_down(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = clean_env(data_dir)
    garbage = tmp_path / "reference.parquet"
    garbage.write_text("not a parquet file")  # the drift service cannot start on it
    env |= WITHOUT_LABEL_STUDIO | {
        "DRIFTLINE_REFERENCE_PATH": str(garbage),
        "DRIFTLINE_SERVING_PORT": str(port_block(1)),
        "DRIFTLINE_SUPERVISOR_MAX_RESTARTS": "2",
        "DRIFTLINE_SUPERVISOR_BACKOFF_MAX_SECONDS": "0.5",
    }
    log = tmp_path / "up.log"
    proc = launch(["up", "--headless", "--metrics-base-port", str(port_block())], env, log)
    try:
        code = proc.wait(300)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text(errors="replace")
    assert code == 3, out[-3000:]
    assert "drift down for good" in out and "DOWN for good: drift" in out
    restarts = (data_dir / "logs" / "up.log").read_text()
    assert "drift is DOWN for good" in restarts and restarts.count("drift exited") >= 2
    assert_nothing_left(data_dir, [], log)


def test_ctrl_c_during_the_demo_prints_the_summary_so_far_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    env = clean_env(data_dir) | WITHOUT_LABEL_STUDIO
    env["DRIFTLINE_SERVING_PORT"] = str(port_block(1))
    log = tmp_path / "demo.log"
    proc = launch(
        ["up", "--demo", "--headless", "--metrics-base-port", str(port_block())], env, log
    )
    try:
        # Once the pumps have sent readings, the demo is in the middle of its stages.
        streaming = re.compile(r"sent=[1-9]")
        assert wait_for(lambda: streaming.search(log.read_text(errors="replace")), 300), (
            log.read_text(errors="replace")[-2000:]
        )
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = log.read_text(errors="replace")
    assert code == 130, out[-3000:]
    assert "Demo summary" in out and "outcome: interrupted: the summary so far" in out
    run_dir = next((data_dir / "demo-runs").glob("2*"))
    assert json.loads((run_dir / "demo-summary.json").read_text())["readings_sent"] > 0
    assert_nothing_left(run_dir, [int(env["DRIFTLINE_SERVING_PORT"])], log)
    assert_nothing_left(data_dir, [], log)
