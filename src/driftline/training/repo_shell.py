"""The git and DVC commands of the data repository (`driftline.training.datarepo`), run with the
pipeline's own identity, DVC's analytics off, and one writer at a time per repository."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from driftline.core.errors import DriftlineError

_ENV = {
    "GIT_AUTHOR_NAME": "Driftline pipeline",
    "GIT_AUTHOR_EMAIL": "pipeline@driftline.invalid",
    "GIT_COMMITTER_NAME": "Driftline pipeline",
    "GIT_COMMITTER_EMAIL": "pipeline@driftline.invalid",
    "GIT_TERMINAL_PROMPT": "0",
    "DVC_NO_ANALYTICS": "1",
}


class DataRepoError(DriftlineError):
    """The data repository could not do what was asked."""


class RepoShell:
    def __init__(self, root: Path) -> None:
        self.root = root

    def git(self, *args: str) -> str:
        return self.run(["git", *args]).stdout.strip()

    def dvc(self, *args: str) -> str:
        return self.run([sys.executable, "-m", "dvc", *args]).stdout.strip()

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(  # nosec B603  # argv built here (dvc/git + fixed verbs), no shell
                argv,
                cwd=self.root,
                env={**os.environ, **_ENV},
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataRepoError(f"{' '.join(argv[:4])} failed: {exc}") from exc
        if check and done.returncode != 0:
            detail = (done.stderr or done.stdout).strip()[-2000:]
            raise DataRepoError(f"{' '.join(argv[:4])} failed ({done.returncode}): {detail}")
        return done

    @contextmanager
    def lock(self) -> Iterator[None]:
        # Two pipeline runs on one repository would otherwise race on git's index and tags.
        with open(self.root / ".git" / "driftline.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
