"""The one child-process helper stops a child whether or not it leads a process group."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from driftline.platform import procs

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_stops_a_child_started_in_a_session_of_its_own() -> None:
    child = procs.start(SLEEP)
    assert procs.stop_group(child, timeout=10) == -signal.SIGTERM


def test_stops_a_child_that_leads_no_group_instead_of_waiting_for_ever() -> None:
    child = subprocess.Popen(SLEEP)  # nosec B603: a fixed argv of ours
    assert procs.stop_group(child, timeout=10) == -signal.SIGTERM


def test_a_grandchild_in_a_session_of_its_own_does_not_outlive_the_child(tmp_path) -> None:
    """As BentoML's workers: out of reach of the signal to the child's group."""
    pid_file = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        f"g = subprocess.Popen({SLEEP!r}, start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(g.pid))\n"
        "time.sleep(60)\n"
    )
    child = procs.start([sys.executable, "-c", script])
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.1)
    grandchild = int(pid_file.read_text())
    assert grandchild in dict(procs.descendants(child.pid))
    procs.stop_group(child, timeout=10)
    for _ in range(100):  # SIGKILL is sent; the process is gone once the kernel has run it
        if not _running(grandchild):
            break
        time.sleep(0.05)
    assert not _running(grandchild)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing
