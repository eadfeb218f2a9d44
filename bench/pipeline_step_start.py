"""What one pipeline step costs to start, with and without KFP's pip install of kfp, side by side.

Each repeat runs the cheapest step of the retraining pipeline (``skip_tuning_step``: it hands its
input on) through KFP's local SubprocessRunner, as ``driftline pipeline run`` does, once compiled
as before (``dsl.component`` installs kfp with pip at the step's start) and once as now
(``install_kfp_package=False``: the environment already holds the locked kfp). The two alternate
within each repeat so a busy machine weighs on both alike. Medians over ``--repeats``; KFP's
own log of each step comes first, the table last.

    .venv/bin/python bench/pipeline_step_start.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kfp import dsl, local  # noqa: E402

from driftline.pipelines import components as c  # noqa: E402

MODES = {
    "pip install kfp (before)": True,
    "install_kfp_package=False (now)": False,
}


def run_step(install_kfp_package: bool) -> float:
    """Seconds from calling the step to its output, run by KFP's local runner."""
    step = dsl.component(base_image="local", install_kfp_package=install_kfp_package)(
        c.skip_tuning_step
    )
    started = time.monotonic()
    task = step(tag="bench")
    elapsed = time.monotonic() - started
    if task.output != "bench":
        raise SystemExit(f"the step returned {task.output!r}, not 'bench'")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=root)
        run_step(False)  # warm the file cache once, for neither mode's benefit
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(args.repeats):
            for mode, install in MODES.items():
                times[mode].append(run_step(install))
    print(
        f"\none pipeline step's start, KFP local SubprocessRunner, {args.repeats} repeats "
        f"(python {platform.python_version()}, {os.cpu_count()} cores)"
    )
    print(f"{'mode':>32} | {'median s':>8} | {'min s':>6} | {'max s':>6}")
    for mode, values in times.items():
        print(
            f"{mode:>32} | {statistics.median(values):8.2f} | "
            f"{min(values):6.2f} | {max(values):6.2f}"
        )
    saved = [a - b for a, b in zip(*times.values(), strict=True)]
    print(f"saved per step: median {statistics.median(saved):.2f} s (paired, same repeat)")


if __name__ == "__main__":
    main()
