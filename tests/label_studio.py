"""A real Label Studio for tests: installed by scripts/label-studio.sh into its own virtualenv,
started on a free port with a fresh SQLite database and a legacy API token made for it."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

from driftline.broker import free_port
from driftline.labels import server
from driftline.procs import stop

ROOT = Path(__file__).resolve().parents[1]
# The first start migrates a fresh database: minutes on a machine shared with other work.
START_TIMEOUT = 900.0


def executable() -> Path:
    out = subprocess.run(  # nosec B603 B607  # the project's own install script
        ["bash", str(ROOT / "scripts" / "label-studio.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def running_label_studio(data_dir: Path) -> Iterator[server.LabelStudioServer]:
    ls = server.start(
        executable(),
        data_dir / "label-studio",
        free_port(),
        username="tester@driftline.local",
        password=secrets.token_hex(12),
        token=secrets.token_hex(20),
        log_path=data_dir / "label-studio.log",
    )
    try:
        server.wait_ready(ls, START_TIMEOUT)
        yield ls
    finally:
        stop(ls.process, timeout=20)
