"""Every ``driftline up --demo`` starts from a fresh state of its own: a new run folder under
``<data dir>/demo-runs`` holding its raw store, MLflow store, model store, data repository,
references and logs. A second demo never inherits the first one's trigger cooldown, models
or rows; the last few runs stay for a look, older ones are removed (and said so).
``driftline up`` without ``--demo`` keeps using the data directory itself, across restarts."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

RUNS_FOLDER = "demo-runs"
KEEP_RUNS = 3  # the new one and the two before it


def new_run_dir(data_dir: Path, now: datetime | None = None) -> tuple[Path, list[Path]]:
    """A new, empty run folder, and the old run folders removed to keep ``KEEP_RUNS``."""
    runs = data_dir / RUNS_FOLDER
    runs.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    run = runs / stamp
    n = 1
    while run.exists():
        n += 1
        run = runs / f"{stamp}-{n}"
    older = sorted(p for p in runs.iterdir() if p.is_dir() and not p.is_symlink())
    removed = older[: max(0, len(older) - (KEEP_RUNS - 1))]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    run.mkdir()
    latest = runs / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run.name)
    return run, removed
