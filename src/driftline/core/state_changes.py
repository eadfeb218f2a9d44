"""A condition logged when it begins, changes or ends, not every time it is seen again.

Serving meets the same condition on every request or poll (no champion yet, Redis away, the
registry away); one line per change keeps the log readable and small, and the first line of a
failure carries its traceback.
"""

from __future__ import annotations

import logging
import threading


class StateChanges:
    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.problem: str | None = None
        self._lock = threading.Lock()  # scoring threads and the watcher thread report alike

    def failing(self, problem: str, *, traceback: bool | BaseException = False) -> bool:
        """Report ``problem``; logged (as a warning, with the current exception's traceback
        when asked, or that of the exception given) only if it differs from the one already
        reported. True when logged."""
        with self._lock:
            if problem == self.problem:
                return False
            self.problem = problem
        self.log.warning("%s: %s", self.what, problem, exc_info=traceback)
        return True

    def ok(self, how: str = "ok again") -> bool:
        """Report that the condition has ended; logged once. True when logged."""
        with self._lock:
            if self.problem is None:
                return False
            self.problem = None
        self.log.info("%s: %s", self.what, how)
        return True
