"""`make demo` as a new user runs it: in a fresh clone of this repository, cold (the clone's
first run, right after `.venv` is set up) and warm (later runs in the same clone), and warm
with one core kept busy by another process. Prints one row per run (with the machine's load)
and the medians per case; the goal beside them: whole run < 180 s, drift onset -> first
prediction of the new model < 90 s.

    python bench/closed_loop.py --runs 3 [--cases cold,warm,busy]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_WHOLE, GOAL_ONSET = 180.0, 90.0


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def clean_env() -> dict[str, str]:
    prefixes = ("KAFKA_", "DRIFTLINE_", "DATABASE_", "MLFLOW_", "BENTOML_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def fresh_clone(root: Path) -> Path:
    """A clone of the commit the benchmark started on (``root/source``), its .venv set up."""
    source = root / "source"
    if not source.exists():
        subprocess.run(["git", "clone", "-q", str(REPO), str(source)], check=True)
    clone = root / f"clone-{time.monotonic_ns()}"
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
    subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=clone, check=True, env=clean_env())
    return clone


def make_demo(clone: Path, case: str) -> dict[str, object]:
    busy = None
    if case == "busy":
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    before = load()
    started = time.monotonic()
    try:
        done = subprocess.run(
            ["make", "demo"], cwd=clone, env=clean_env(), capture_output=True, text=True
        )
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    whole = time.monotonic() - started
    summary_path = clone / ".driftline" / "demo-runs" / "latest" / "demo-summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    times = summary.get("seconds_from_drift_onset", {})
    return {
        "case": case,
        "exit": done.returncode,
        "whole": round(whole, 1),
        "onset_to_prediction": times.get("first_prediction_of_new_model"),
        "onset_to_promotion": times.get("promotion"),
        "steps": summary.get("pipeline_step_seconds", {}),
        "load_before": before,
        "load_after": load(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default="cold,warm,busy")
    args = parser.parse_args()
    cases = args.cases.split(",")
    rows = []
    root = Path(tempfile.mkdtemp(prefix="driftline-closed-loop-"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                            capture_output=True).stdout.strip()  # fmt: skip
    print(f"commit {commit}, {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
    try:
        warm_clone: Path | None = None  # warm runs use the last cold run's clone
        for case in cases:
            for _ in range(args.runs):
                if case == "cold":
                    warm_clone = fresh_clone(root)
                elif warm_clone is None:
                    warm_clone = fresh_clone(root)
                    make_demo(warm_clone, "warm-up")  # its first run is a cold one
                row = make_demo(warm_clone, case)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\ngoal: whole < {GOAL_WHOLE:.0f} s, onset -> prediction < {GOAL_ONSET:.0f} s")
    print("| case | whole run, s (runs) | median | onset -> new prediction, s | median | load |")
    print("|---|---|---:|---|---:|---|")
    for case in cases:
        mine = [r for r in rows if r["case"] == case]
        whole = [float(r["whole"]) for r in mine]  # type: ignore[arg-type]
        onset = [float(r["onset_to_prediction"] or "nan") for r in mine]  # type: ignore[arg-type]
        loads = ", ".join(f"{r['load_before']}-{r['load_after']}" for r in mine)
        print(
            f"| {case} | {', '.join(f'{w:.0f}' for w in whole)} | {statistics.median(whole):.0f} "
            f"| {', '.join(f'{o:.1f}' for o in onset)} | {statistics.median(onset):.1f} "
            f"| {loads} |"
        )


if __name__ == "__main__":
    main()
