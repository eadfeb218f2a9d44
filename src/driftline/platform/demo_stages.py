"""The demo's stages, in order, each with a deadline: a demo that cannot close the loop stops
and says which stage did not happen and where to read why, instead of waiting forever."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    key: str
    what: str  # as the user reads it: "<what> did not happen within N s"
    deadline: float  # seconds after the previous stage was reached
    log: str  # glob of the log (under the logs folder) that explains a miss


# Generous against a slow, busy machine (the whole demo takes 1-3 minutes): a deadline is
# there to end a demo that cannot finish, not to judge its speed.
STAGES: tuple[Stage, ...] = (
    Stage("champion", "the first champion (trained, registered, promoted)", 240, "bootstrap.log"),
    Stage("streaming", "valid readings from the pumps", 90, "validator.log"),
    Stage("detection", "a drifted window after the drift onset", 90, "drift.log"),
    Stage("trigger", "the retraining trigger firing", 90, "retrain-trigger.log"),
    # The pipeline runs the AutoML search too: its tune step took 85-100 s at load 11-13.
    Stage("promotion", "the promotion of a retrained model", 420, "pipeline-*.log"),
    Stage("switch", "serving answering with the retrained model", 90, "serving.log"),
    # The run records its decision after announcing it: stopping before would cut it short.
    Stage("finished", "the retraining run finishing", 90, "pipeline-*.log"),
)


@dataclass
class StageClock:
    """Which stages were reached and when; which one is overdue."""

    started: float
    stages: tuple[Stage, ...] = STAGES
    reached: dict[str, float] = field(default_factory=dict)

    def reach(self, key: str, now: float) -> None:
        self.reached.setdefault(key, now)

    @property
    def current(self) -> Stage | None:
        """The first stage not reached yet (None: all were)."""
        return next((s for s in self.stages if s.key not in self.reached), None)

    def since_previous(self, now: float) -> float:
        """Seconds the current stage has been waited for."""
        current = self.current
        if current is None:
            return 0.0
        i = self.stages.index(current)
        before = self.reached.get(self.stages[i - 1].key, self.started) if i else self.started
        return now - before

    def overdue(self, now: float) -> Stage | None:
        current = self.current
        if current is not None and self.since_previous(now) > current.deadline:
            return current
        return None


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ERROR = re.compile(r"^\s*(?:[\w.]+\.)?\w*(?:Error|Exception): \S")


def first_error(path: Path) -> str | None:
    """The first exception message in the log at ``path`` (the cause; later ones tend to be
    its consequences, e.g. KFP's "pipeline failed")."""
    with path.open(errors="replace") as f:
        for line in f:
            if _ERROR.match(line := _ANSI.sub("", line)):
                return line.strip()
    return None


def log_tail(logs: Path, pattern: str, lines: int = 30) -> tuple[Path | None, list[str]]:
    """The newest log matching ``pattern`` and its last ``lines`` lines."""
    found = sorted(logs.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        return None, []
    with found[-1].open(errors="replace") as f:
        return found[-1], [_ANSI.sub("", line.rstrip("\n")) for line in deque(f, maxlen=lines)]
