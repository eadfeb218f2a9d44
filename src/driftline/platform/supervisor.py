"""Starts child processes (broker, services), watches them, and stops every one on exit.

A child that exits is restarted after a backoff, within a restart budget per time window;
one that spends its budget is down for good: logged as an error and marked, never dropped
silently. The caller (``driftline up``) decides what a service down for good means.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from driftline.platform import procs
from driftline.platform.services import service_script

log = logging.getLogger(__name__)


@dataclass
class RestartBudget:
    """At most ``max_restarts`` restarts within any ``window`` seconds; the wait before a
    restart doubles from ``first_backoff`` with each restart still inside the window."""

    max_restarts: int = 5
    window: float = 300.0
    backoff_max: float = 30.0
    first_backoff: float = 1.0
    _restarts: deque[float] = field(default_factory=deque)

    def recent(self, now: float) -> int:
        while self._restarts and now - self._restarts[0] > self.window:
            self._restarts.popleft()
        return len(self._restarts)

    def exhausted(self, now: float) -> bool:
        return self.recent(now) >= self.max_restarts

    def backoff(self, now: float) -> float:
        """Seconds to wait before the next restart."""
        return min(self.backoff_max, self.first_backoff * 2 ** self.recent(now))

    def spend(self, now: float) -> None:
        self._restarts.append(now)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    restart: bool = True  # False: a one-off job (the demo's first champion), never restarted
    budget: RestartBudget = field(default_factory=RestartBudget)
    down_for_good: bool = False
    restart_at: float | None = None  # monotonic time of a scheduled restart
    last_exit: int | None = None
    parent_death: signal.Signals = signal.SIGTERM  # what Linux sends it if we die (procs.start)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child from here on
        self.proc = procs.start(self.argv, env=self.env, stdout=out, parent_death=self.parent_death)
        out.close()
        self.restart_at = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def state(self) -> str:
        if self.alive:
            return "up"
        if self.proc is not None and not self.restart:
            code = self.proc.returncode
            return "done" if code == 0 else f"failed ({code})"
        if self.down_for_good:
            return "DOWN for good"
        if self.restart_at is not None:
            return "restarting"
        return "exited" if self.proc is not None else "not started"

    def stop(self, timeout: float = 10.0) -> None:
        self.terminate()
        self.wait_stopped(timeout)

    def terminate(self) -> None:
        """SIGTERM to the whole process group (its own session): children of the child
        (BentoML's workers, KFP's step processes) go too."""
        self.restart_at = None
        if self.proc is not None and self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        if self.proc is not None:
            procs.wait_group(self.proc, timeout, self.name)

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.proc is not None:
            procs.signal_group(self.proc.pid, sig)


@dataclass
class Supervisor:
    """Children restart when they die (within a budget per window, with backoff); all stop
    together on exit."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    max_restarts: int = 5
    restart_window: float = 300.0
    backoff_max: float = 30.0
    children: list[Child] = field(default_factory=list)

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> Child:
        return self.start_child(
            name, [sys.executable, str(service_script(name))], {**self.env, **(extra_env or {})}
        )

    def start_child(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        restart: bool = True,
        parent_death: signal.Signals = signal.SIGTERM,
    ) -> Child:
        budget = RestartBudget(self.max_restarts, self.restart_window, self.backoff_max)
        log_path = self.log_dir / f"{name}.log"
        child = Child(name, argv, env, log_path, restart=restart, budget=budget)
        child.parent_death = parent_death
        child.start()
        self.children.append(child)
        log.debug(
            "started %s (pid %s, log %s)", name, child.proc and child.proc.pid, child.log_path
        )
        return child

    def check(self, now: float | None = None) -> list[str]:
        """Restart dead children whose backoff has passed; returns the names restarted."""
        now = time.monotonic() if now is None else now
        restarted = []
        for child in self.children:
            if child.alive or child.down_for_good or not child.restart or child.proc is None:
                continue
            if child.restart_at is None:
                child.last_exit = child.proc.returncode
                if child.budget.exhausted(now):
                    child.down_for_good = True
                    log.error(
                        "%s is DOWN for good: it exited (code %s) %d times within %.0f s, the "
                        "restart budget; see %s",
                        child.name,
                        child.last_exit,
                        child.budget.recent(now) + 1,
                        child.budget.window,
                        child.log_path,
                    )
                    continue
                wait = child.budget.backoff(now)
                child.restart_at = now + wait
                log.warning(
                    "%s exited (code %s); restarting in %.0f s (%d of %d restarts in %.0f s)",
                    child.name,
                    child.last_exit,
                    wait,
                    child.budget.recent(now) + 1,
                    child.budget.max_restarts,
                    child.budget.window,
                )
            if now >= child.restart_at:
                child.budget.spend(now)
                child.restarts += 1
                child.start()
                restarted.append(child.name)
        return restarted

    def down_for_good(self) -> list[Child]:
        return [c for c in self.children if c.down_for_good]

    def stop_all(self, timeout: float = 10.0) -> None:
        """All at once: each has its own shutdown to do (leaving consumer groups, committing)."""
        for child in reversed(self.children):
            child.terminate()
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            child.wait_stopped(max(0.1, deadline - time.monotonic()))

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_until(predicate: object, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(interval)
    return False
