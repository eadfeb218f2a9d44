"""Child processes, started and stopped one way: each in a session (process group) of its own,
SIGTERMed by Linux if its parent dies; stopped by SIGTERM to the whole group, a wait, and
SIGKILL to whatever is left (a grandchild must not outlive the child)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO

PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None

    def _set() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return _set


def signal_group(pid: int, sig: signal.Signals) -> None:
    """``sig`` to the process group led by ``pid`` (a child started with start_new_session):
    the child and every process it started that stayed in its group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = subprocess.STDOUT,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (our own fixed argument lists, never a shell) in a session of its own:
    Ctrl-C in a terminal reaches only us, and we stop the child in order with ``stop_group``.
    Linux SIGTERMs it if this process dies, even by SIGKILL. stderr goes to stdout unless
    told otherwise."""
    return subprocess.Popen(  # nosec B603  # fixed argv of our own programs, no shell
        list(argv),
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )


def wait_group(child: subprocess.Popen[bytes], timeout: float, name: str | None = None) -> int:
    """Wait up to ``timeout`` for ``child`` (already signalled) to exit, then SIGKILL its
    group; whatever of the group outlived the child is SIGKILLed too. The child's exit code."""
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        if name is not None:
            log.warning("%s did not stop in %.0fs; killing it", name, timeout)
        signal_group(child.pid, signal.SIGKILL)
        child.kill()  # a child without a session of its own leads no group
        code = child.wait()
    signal_group(child.pid, signal.SIGKILL)
    return code


def stop_group(
    child: subprocess.Popen[bytes], timeout: float = 30.0, name: str | None = None
) -> int:
    """SIGTERM to ``child``'s process group, SIGKILL to what is left after ``timeout`` (or
    once the child is gone: a grandchild must not outlive it); the child's exit code."""
    signal_group(child.pid, signal.SIGTERM)
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(child.pid) != child.pid:  # started without a session of its own
            child.terminate()
    return wait_group(child, timeout, name)
