"""Child processes: ones that cannot outlive the process that started them, and stopping one."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None

    def _set() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return _set


def stop(child: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM, then SIGKILL if ``child`` is still there after ``timeout``; its exit code."""
    child.terminate()
    try:
        return child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def signal_group(pid: int, sig: signal.Signals) -> None:
    """``sig`` to the process group led by ``pid`` (a child started with start_new_session):
    the child and every process it started that stayed in its group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_group(child: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM to ``child``'s process group, SIGKILL to what is left after ``timeout`` (or
    once the child is gone: a grandchild must not outlive it); the child's exit code."""
    signal_group(child.pid, signal.SIGTERM)
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(child.pid, signal.SIGKILL)
        code = child.wait()
    signal_group(child.pid, signal.SIGKILL)
    return code
