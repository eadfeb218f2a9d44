"""The one child-process helper stops a child whether or not it leads a process group."""

from __future__ import annotations

import signal
import subprocess
import sys

from driftline.platform import procs

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_stops_a_child_started_in_a_session_of_its_own() -> None:
    child = procs.start(SLEEP)
    assert procs.stop_group(child, timeout=10) == -signal.SIGTERM


def test_stops_a_child_that_leads_no_group_instead_of_waiting_for_ever() -> None:
    child = subprocess.Popen(SLEEP)  # nosec B603: a fixed argv of ours
    assert procs.stop_group(child, timeout=10) == -signal.SIGTERM
