"""What Ray Tune adds to an AutoML search: the same trials with and without it, side by side.

Per repeat: (1) a Ray started and shut down as the tune step does (``ray_session``), nothing
run; (2) ``run_search`` of ``--trials`` trials on Ray Tune + Optuna (its own Ray: start-up,
trial workers, teardown); (3) the baseline: the very specs that search tried, evaluated one
after another in this process (the search's work without Ray). Medians over ``--repeats``.

    .venv/bin/python bench/automl_overhead.py [--trials 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from driftline.anomaly.automl import Search, run_search  # noqa: E402
from driftline.anomaly.automl_ray import SEARCHER, ray_session  # noqa: E402
from tests.pumps import pump  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    train = [pump(seed) for seed in range(4)]
    rows: dict[str, list[float]] = {"ray start + shutdown": [], "search on Ray": []}
    rows["same trials in-process"] = []
    for _ in range(args.repeats):
        t0 = time.monotonic()
        with ray_session():
            pass
        rows["ray start + shutdown"].append(time.monotonic() - t0)
        t0 = time.monotonic()
        result, _ = run_search(train, 600.0, max_trials=args.trials, folds=2)
        rows["search on Ray"].append(time.monotonic() - t0)
        search = Search(train, folds=2)
        t0 = time.monotonic()
        for trial in result.trials:
            search.evaluate(trial.spec)
        rows["same trials in-process"].append(time.monotonic() - t0)
    print(
        f"{SEARCHER}, {args.trials} trials on 4 pumps, {args.repeats} repeats; "
        f"ray {ray.__version__}, python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    base = statistics.median(rows["same trials in-process"])
    print(f"{'what':<26} {'median s':>9} {'min s':>7} {'max s':>7} {'x baseline':>10}")
    for name, seconds in rows.items():
        median = statistics.median(seconds)
        print(
            f"{name:<26} {median:>9.1f} {min(seconds):>7.1f} {max(seconds):>7.1f} "
            f"{median / base:>10.1f}"
        )


if __name__ == "__main__":
    main()
