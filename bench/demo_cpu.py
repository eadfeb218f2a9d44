"""Where `driftline up --demo` spends its CPU, by component, as now and as before, side by side:
the two demos run at the same time, so a busy machine weighs on both alike. By default "before"
is the simulated pumps' batching before (DRIFTLINE_SIMULATOR_LINGER_MS=5: a batch per 20 ms
tick, against 100 ms now); `--before NAME=VALUE` sets other settings instead, such as
DRIFTLINE_TOPIC_PARTITIONS=4 (the embedded broker's partitions before `up` made them 1).

Every process the demo starts is sampled from /proc every 0.2 s (its CPU seconds when last
seen; processes shorter than that are missed, so the total counted is a little low) and put
in a component: the embedded broker, `driftline up` itself (the pumps, the monitor), each
service, serving, the pipeline's steps, Ray, DVC. The demos' own figures (drift onset to the
first drifted window, to the new model's first prediction) show what a change costs in latency.

    .venv/bin/python bench/demo_cpu.py [--before NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from closed_loop import clean_env  # bench/ is on sys.path: this script runs from it

TICK = os.sysconf("SC_CLK_TCK")
# Component -> what its command line holds; the first match wins, in this order.
COMPONENTS = (
    ("broker (Tansu)", "tansu"),
    ("ingest", "services/ingest/"),
    ("validator", "services/validator/"),
    ("drift", "services/drift/"),
    ("retrain-trigger", "services/retrain-trigger/"),
    ("serving (BentoML)", "bentoml"),
    ("Ray (tune's trials and daemons)", "/ray/"),
    ("DVC", "-m dvc"),
    ("pipeline steps (KFP)", "kfp.dsl.executor_main"),
    ("first champion (bootstrap step)", "step bootstrap"),
    ("pipeline run (KFP local runner)", "pipeline run"),
    ("driftline up (pumps, monitor)", "up --demo"),
)


def component(cmdline: str) -> str:
    return next((name for name, marker in COMPONENTS if marker in cmdline), "other")


def _stat(pid: int) -> tuple[int, float]:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rfind(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK  # parent, utime + stime


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Sampler(threading.Thread):
    """CPU seconds of every descendant of ``root`` when last seen, by component."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.seen: dict[int, tuple[str, float]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            procs: dict[int, tuple[int, float]] = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        procs[int(entry)] = _stat(int(entry))
                    except (OSError, ValueError):
                        continue
            tree, grew = {self.root}, True
            while grew:
                grew = False
                for pid, (parent, _) in procs.items():
                    if parent in tree and pid not in tree:
                        tree.add(pid)
                        grew = True
            for pid in tree & procs.keys():
                name = self.seen[pid][0] if pid in self.seen else component(_cmdline(pid))
                self.seen[pid] = (name, procs[pid][1])

    def by_component(self) -> Counter[str]:
        totals: Counter[str] = Counter()
        for name, seconds in self.seen.values():
            totals[name] += seconds
        return totals


def start_demo(
    root: Path, name: str, settings: dict[str, str], port_base: int
) -> tuple[subprocess.Popen, Path]:
    data_dir = root / name
    env = clean_env() | settings
    env |= {"DRIFTLINE_DATA_DIR": str(data_dir), "DRIFTLINE_SERVING_PORT": str(port_base)}
    argv = [sys.executable, "-m", "driftline.cli.main", "up", "--demo", "--headless"]
    argv += ["--metrics-base-port", str(port_base + 10)]
    log = (root / f"{data_dir.name}.log").open("w")
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT), data_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--before",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a setting of the demo before (repeatable); default "
        "DRIFTLINE_SIMULATOR_LINGER_MS=5, the pumps' batching before",
    )
    parser.add_argument("--port-base", type=int, default=19300, help="ports from here on")
    args = parser.parse_args()
    before = dict(pair.split("=", 1) for pair in args.before) or {
        "DRIFTLINE_SIMULATOR_LINGER_MS": "5"
    }
    cases = {
        "now (defaults)": {},
        "before (" + ", ".join(f"{k}={v}" for k, v in before.items()) + ")": before,
    }
    with tempfile.TemporaryDirectory(prefix="demo-cpu-") as tmp:
        runs = {}
        for i, (case, settings) in enumerate(cases.items()):
            proc, data_dir = start_demo(Path(tmp), f"demo-{i}", settings, args.port_base + 100 * i)
            sampler = Sampler(proc.pid)
            sampler.start()
            runs[case] = (proc, data_dir, sampler, time.monotonic())
        print(f"two demos running side by side in {tmp} ...", file=sys.stderr)
        ended: dict[str, float] = {}
        while len(ended) < len(runs):  # each demo's own end, not when it is looked at
            for case, (proc, _, _, _) in runs.items():
                if case not in ended and proc.poll() is not None:
                    ended[case] = time.monotonic()
            time.sleep(0.5)
        results = {}
        for case, (proc, data_dir, sampler, started) in runs.items():
            sampler.stop.set()
            sampler.join()
            summary_path = data_dir / "demo-runs" / "latest" / "demo-summary.json"
            summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
            took = ended[case] - started
            results[case] = (proc.returncode, took, sampler.by_component(), summary)
    names = [name for name, _ in COMPONENTS] + ["other"]
    width = max(len(n) for n in names) + 2
    col = max(24, *(len(case) + 2 for case in results))
    header = "".join(f"{case:>{col}}" for case in results)
    print(
        f"\nCPU seconds by component; load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} cores"
    )
    print(f"{'component':<{width}}{header}")
    for name in names:
        row = "".join(f"{r[2].get(name, 0.0):>{col}.1f}" for r in results.values())
        print(f"{name:<{width}}{row}")
    print(
        f"{'all counted':<{width}}"
        + "".join(f"{sum(r[2].values()):>{col}.1f}" for r in results.values())
    )
    print(f"{'wall clock, s':<{width}}" + "".join(f"{r[1]:>{col}.0f}" for r in results.values()))
    print(f"{'exit code':<{width}}" + "".join(f"{r[0]:>{col}}" for r in results.values()))
    for key, label in (
        ("detection", "onset -> first drifted, s"),
        ("first_prediction_of_new_model", "onset -> new model, s"),
    ):
        row = "".join(
            f"{r[3].get('seconds_from_drift_onset', {}).get(key, float('nan')):>{col}.1f}"
            for r in results.values()
        )
        print(f"{label:<{width}}{row}")
    print(
        f"{'readings sent':<{width}}"
        + "".join(f"{r[3].get('readings_sent', 0):>{col},}" for r in results.values())
    )
    return 0 if all(r[0] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
