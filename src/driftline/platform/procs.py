"""Child processes, started and stopped one way: each in a session (process group) of its own,
SIGTERMed by Linux if its parent dies; stopped by SIGTERM to the whole group, a wait, and
SIGKILL to whatever is left (a grandchild must not outlive the child, also one that moved to
a session of its own, as BentoML's workers do)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


def die_with_parent(
    sig: signal.Signals = signal.SIGTERM,
) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send ``sig`` to the child when its parent dies (even by
    SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None

    def _set() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)

    return _set


def exit_if_orphaned(parent_command: str) -> None:
    """In a child that just set ``die_with_parent`` itself: if the parent that started it
    (its command line holds ``parent_command``) died before that, no signal will come: exit."""
    try:
        command = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        command = b""
    if parent_command.encode() not in command:
        os._exit(0)


def _stat(process_dir: str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command (state, parent pid, ...), if any."""
    try:
        stat = Path(process_dir, "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # after the command, which may hold spaces


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every process, from /proc."""
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (fields := _stat(entry.path)) is not None:
            out[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return out


def running_since(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), None if none runs (a zombie
    does not): with the pid, it names one process, as a pid is reused but not with the same
    start time."""
    fields = _stat(f"/proc/{pid}")
    return None if fields is None or fields[0] in ("Z", "X") else int(fields[19])


def descendants(pid: int) -> list[tuple[int, int]]:
    """(pid, start time) of every process below ``pid``, whatever its session."""
    table = _processes()
    below, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, started) in table.items():
            if ppid == parent:
                below.append((child, started))
                todo.append(child)
    return below


def kill_all(processes: list[tuple[int, int]]) -> None:
    """SIGKILL each of ``processes`` (from ``descendants``) still running as the same process."""
    table = _processes()
    for pid, started in processes:
        if table.get(pid, (0, -1))[1] == started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


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
    parent_death: signal.Signals = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` (our own fixed argument lists, never a shell) in a session of its own:
    Ctrl-C in a terminal reaches only us, and we stop the child in order with ``stop_group``.
    Linux sends it ``parent_death`` if this process dies, even by SIGKILL (SIGKILL for a child
    that may lose a SIGTERM while it starts, as BentoML's server does). stderr goes to stdout
    unless told otherwise."""
    return subprocess.Popen(  # nosec B603  # fixed argv of our own programs, no shell
        list(argv),
        env=env,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=die_with_parent(parent_death),
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
    below = descendants(child.pid)  # before the signal: an orphan is no one's child
    signal_group(child.pid, signal.SIGTERM)
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(child.pid) != child.pid:  # started without a session of its own
            child.terminate()
    code = wait_group(child, timeout, name)
    kill_all(below)
    return code
