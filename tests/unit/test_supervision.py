"""The supervisor's restart budget and the demo's stage deadlines and run folders."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from driftline.platform.demo_runs import KEEP_RUNS, new_run_dir
from driftline.platform.demo_stages import STAGES, StageClock, log_tail
from driftline.platform.supervisor import RestartBudget, Supervisor


def test_backoff_doubles_within_the_window_and_resets_after_it() -> None:
    budget = RestartBudget(max_restarts=3, window=60.0, backoff_max=5.0)
    assert budget.backoff(0.0) == 1.0
    budget.spend(0.0)
    assert budget.backoff(1.0) == 2.0
    budget.spend(1.0)
    assert budget.backoff(2.0) == 4.0
    budget.spend(2.0)
    assert budget.exhausted(3.0)
    assert budget.backoff(3.0) == 5.0  # capped
    assert not budget.exhausted(61.5)  # the first restart left the window
    assert budget.recent(200.0) == 0 and budget.backoff(200.0) == 1.0


def test_a_child_that_keeps_exiting_is_restarted_then_down_for_good(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path, max_restarts=2, restart_window=60.0, backoff_max=0.0)
    child = supervisor.start_child("flaky", [sys.executable, "-c", "raise SystemExit(7)"], {})
    restarts = []
    deadline = time.monotonic() + 30
    while not child.down_for_good and time.monotonic() < deadline:
        restarts += supervisor.check()
        time.sleep(0.05)
    assert restarts == ["flaky", "flaky"]
    assert child.down_for_good and child.state == "DOWN for good" and child.last_exit == 7
    assert supervisor.down_for_good() == [child]
    supervisor.stop_all()


def test_a_one_off_child_is_never_restarted(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path)
    child = supervisor.start_child("job", [sys.executable, "-c", "pass"], {}, restart=False)
    assert child.proc is not None and child.proc.wait(30) == 0
    assert supervisor.check() == [] and child.state == "done" and not child.down_for_good


def test_the_current_stage_is_overdue_after_its_deadline() -> None:
    clock = StageClock(started=100.0)
    first, second = STAGES[0], STAGES[1]
    assert clock.current == first and clock.overdue(100.0 + first.deadline) is None
    assert clock.overdue(100.0 + first.deadline + 1) == first
    clock.reach("champion", 150.0)
    assert clock.current == second
    assert clock.since_previous(160.0) == 10.0
    assert clock.overdue(150.0 + second.deadline + 1) == second
    for stage in STAGES:
        clock.reach(stage.key, 200.0)
    assert clock.current is None and clock.overdue(10_000.0) is None


def test_log_tail_reads_the_newest_matching_log(tmp_path: Path) -> None:
    (tmp_path / "pipeline-a.log").write_text("old\n")
    time.sleep(0.01)
    (tmp_path / "pipeline-b.log").write_text("".join(f"line {i}\n" for i in range(50)))
    path, lines = log_tail(tmp_path, "pipeline-*.log", lines=3)
    assert path == tmp_path / "pipeline-b.log" and lines == ["line 47", "line 48", "line 49"]
    assert log_tail(tmp_path, "none-*.log") == (None, [])


def test_every_demo_run_gets_a_new_folder_and_old_ones_go(tmp_path: Path) -> None:
    made = []
    for minute in range(KEEP_RUNS + 2):
        run, removed = new_run_dir(tmp_path, datetime(2026, 1, 1, 12, minute, tzinfo=UTC))
        assert run.is_dir() and not any(run.iterdir())
        made.append((run, removed))
    runs = sorted(p for p in (tmp_path / "demo-runs").iterdir() if not p.is_symlink())
    assert runs == [run for run, _ in made[-KEEP_RUNS:]]
    assert made[-1][1] == [made[-KEEP_RUNS - 1][0]]  # said what it removed
    assert (tmp_path / "demo-runs" / "latest").resolve() == made[-1][0].resolve()
    again, _ = new_run_dir(tmp_path, datetime(2026, 1, 1, 12, KEEP_RUNS + 1, tzinfo=UTC))
    assert again != made[-1][0]  # the same second twice: still a fresh folder
