"""Starts child processes (broker, services), watches them, and stops every one on exit."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from driftline.procs import die_with_parent
from driftline.services import service_script

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child from here on
        self.proc = subprocess.Popen(  # nosec B603  # argv of our own services, no shell
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        out.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        self.wait_stopped(timeout)

    def terminate(self) -> None:
        """SIGTERM to the whole process group (its own session): children of the child
        (BentoML's workers, KFP's step processes) go too."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self._signal_group(signal.SIGKILL)
            self.proc.wait()
        self._signal_group(signal.SIGKILL)  # any grandchild that outlived its parent

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


@dataclass
class Supervisor:
    """Children restart when they die (up to ``max_restarts``); all stop together on exit."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    max_restarts: int = 5
    children: list[Child] = field(default_factory=list)

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> Child:
        return self.start_child(
            name, [sys.executable, str(service_script(name))], {**self.env, **(extra_env or {})}
        )

    def start_child(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, env, self.log_dir / f"{name}.log")
        child.start()
        self.children.append(child)
        log.info(
            "started %s (pid %s, log %s)",
            name,
            child.proc.pid if child.proc else "?",
            child.log_path,
        )
        return child

    def check(self) -> list[str]:
        """Restart dead children; returns the names of those restarted."""
        restarted = []
        for child in self.children:
            if not child.alive and child.restarts < self.max_restarts:
                code = child.proc.returncode if child.proc else None
                log.warning("%s exited (code %s); restarting", child.name, code)
                child.restarts += 1
                child.start()
                restarted.append(child.name)
        return restarted

    def stop_all(self, timeout: float = 10.0) -> None:
        """All at once: each has its own shutdown to do (leaving consumer groups, committing)."""
        for child in reversed(self.children):
            child.terminate()
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            child.wait_stopped(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


def wait_until(predicate: object, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval)
    return False
