"""Drift detection quality on SKAB valve1, scored as changepoint detection the way SKAB's
leaderboard scores it (NAB: Standard, LowFP and LowFN profiles; bench/nab.py).

Per file, the reference is its first 400 rows (SKAB's train part, never scored); the drift
chain then slides over the rest in event time: every ``--stride`` rows, the window of the last
``--window`` rows goes through the drift service's ``DriftDetector.compare`` (the same
stattest, threshold and drift-share rule), and the trigger's consecutive-window rule turns
the window verdicts into alarms. An alarm is stamped with the time of the window's last
reading (when the service would publish it) and counts as a changepoint detection:

- ``onset``: an alarm when ``--consecutive`` windows in a row are drifted (the retrain
  trigger's rule, without its one-hour cooldown); the episode lasts until as many clean
  windows in a row, and only then can the next one start.
- ``change``: those alarms, and one more when a drift episode ends (as many clean windows in
  a row): SKAB marks the end of each anomaly as a changepoint too.

Each recording's reference is its per-sensor baseline (``driftline.anomaly.baseline``: its
first 400 valid rows). The same chain then runs as the drift service does, against one shared
reference (the first 400 rows of the first ``--normal`` recording, as a model's reference is
for a fleet), on both of its bases (``DRIFTLINE_DRIFT_BASIS``): ``raw``, measurements as they
are (``DriftDetector``), and ``baseline``, each window relative to its recording's baseline and
the reference relative to its own (``BaselineDriftDetector``); with the chain's stattest and
with the service's default one (normed Wasserstein >= 2).

Reference rows, on the same files in the same run: a detector that never fires, an alarm
every 60 rows, random alarms at our rate (seeded; medians over ``--seeds``; their false alarms
per hour measured by placing alarms at that rate on the normal recordings), and River's ADWIN
and PageHinkley on each feature (standardised by the reference's mean and std; an alarm when
any feature's detector fires). False alarms per hour come from the ``--normal`` recordings
(first 400 rows as reference, every alarm false).

Recordings come from any folders (``--data``, in natural file order). The first ``--tune``
recordings are the ones ``--select`` chooses settings on; the rest are held out. The defaults
were chosen on valve1 files 0-7 with ``--select`` (best LowFP among chains with at most one
false alarm per hour on the anomaly-free recording; then fewer false positives).

    .venv/bin/python bench/drift_quality.py [--data DIR...] [--normal DIR...] [--quick]
    .venv/bin/python bench/drift_quality.py --select     # grid search on the first --tune files
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from nab import Confusion, confusion, detection_windows, nab_scores  # bench/nab.py
from rich.console import Console
from rich.table import Table

from driftline.anomaly.baseline import SensorBaseline
from driftline.core.profile import load_profile
from driftline.core.records import DriftEvent
from driftline.core.settings import DEFAULT_PROFILE
from driftline.drift.detector import DriftDetector
from driftline.drift.reference import Reference
from driftline.drift.relative import BaselineDriftDetector
from driftline.drift.windows import ClosedWindow
from driftline.simulate.signals import read_skab_csv

ROOT = Path(__file__).resolve().parents[1]
SKAB = ROOT.parent / "shared" / "data" / "skab" / "data"
REFERENCE_ROWS = 400  # SKAB's train part of every file: the reference, never scored
NAB_WIDTH_NS = 60 * 10**9  # the leaderboard's detection window, right of each changepoint
console = Console(width=150)
TESTS = (  # (stattest, threshold) tried by --select
    ("wasserstein", 1.0),
    ("wasserstein", 2.0),
    ("wasserstein", 3.0),
    ("ks", 0.001),
    ("ks", 1e-6),
)


@dataclass(frozen=True)
class Chain:
    # Chosen by --select on valve1 files 0-7 (see the module docstring).
    window: int = 60
    stride: int = 2
    stattest: str = "ks"
    threshold: float = 1e-6
    share: float = 0.375
    consecutive: int = 2
    alarm: str = "change"
    # own: each recording's baseline is its reference; raw / baseline: one shared reference,
    # compared on that basis, as the drift service does
    reference: Literal["own", "raw", "baseline"] = "own"

    def describe(self) -> str:
        rule = ">=" if self.stattest == "wasserstein" else "p-value <="
        return (
            f"window {self.window}, stride {self.stride}, {self.stattest} {rule} "
            f"{self.threshold:g}, share {self.share:g}, {self.consecutive} in a row, "
            f"alarms: {self.alarm}"
        )


@dataclass(frozen=True, eq=False)  # hashed by identity: window_events caches per recording
class Recording:
    name: str
    times_ns: np.ndarray  # every row, int64 ns
    values: np.ndarray  # rows x features
    changepoints_ns: np.ndarray  # of the scored rows

    @property
    def scored_ns(self) -> np.ndarray:
        return self.times_ns[REFERENCE_ROWS:]


@dataclass
class Outcome:
    name: str
    alarms: int
    scores: dict[str, float]
    detected: int
    missed: int
    false_positives: int
    delay_s: float  # mean first-alarm delay of detected changepoints
    false_per_hour: float  # on the anomaly-free recording


FEATURES = load_profile(DEFAULT_PROFILE).features


def sensor_baseline(rec: Recording) -> SensorBaseline:
    """The recording's per-sensor baseline (the anomaly models' object): its first 400 rows."""
    import pandas as pd

    from driftline.anomaly.baseline import from_first_readings

    frame = pd.DataFrame(rec.values, columns=FEATURES)
    baseline = from_first_readings(frame, rec.name, FEATURES, REFERENCE_ROWS)
    if baseline is None:
        raise SystemExit(f"{rec.name}: fewer than {REFERENCE_ROWS} valid rows")
    return baseline


def baseline_reference(rec: Recording) -> Reference:
    """The recording's per-sensor baseline as a drift reference."""
    baseline = sensor_baseline(rec)
    return Reference(f"baseline-{baseline.version}", FEATURES, baseline.values(), rec.name)


SHARED: dict[str, Reference] = {}  # "normal": the shared reference, set in main


def load_recording(path: Path) -> Recording:
    frame = read_skab_csv(path)
    times = frame["datetime"].to_numpy(dtype="datetime64[ns]").astype("int64")
    cps = frame["changepoint"].to_numpy() == 1 if "changepoint" in frame else np.zeros(len(frame))
    cps[:REFERENCE_ROWS] = False
    name = f"{path.parent.name}/{path.name}"
    return Recording(
        name, times, frame[FEATURES].to_numpy(dtype="float64"), times[cps.astype(bool)]
    )


# --- our chain ------------------------------------------------------------------------------


@cache
def window_events(
    rec: Recording, window: int, stride: int, stattest: str, threshold: float, reference: str
) -> list[tuple[int, DriftEvent]]:
    """(last row, event) of the detector's compare on each window of the scored part, as the
    drift service runs it. The share threshold is applied later (statistics do not depend on
    it)."""
    detector: DriftDetector | BaselineDriftDetector
    if reference == "baseline":
        lookup = {rec.name: sensor_baseline(rec)}.get
        detector = BaselineDriftDetector(
            SHARED["normal"], lookup, stattest, threshold, 1.0, REFERENCE_ROWS
        )
    else:
        ref = SHARED["normal"] if reference == "raw" else baseline_reference(rec)
        detector = DriftDetector(ref, stattest, threshold, share_threshold=1.0)
    events = []
    for end in range(REFERENCE_ROWS + window - 1, len(rec.values), stride):
        start = end - window + 1
        closed = ClosedWindow(
            sensor_id=rec.name,
            start=datetime.fromtimestamp(rec.times_ns[start] / 1e9, UTC),
            end=datetime.fromtimestamp(rec.times_ns[end] / 1e9, UTC),
            values=rec.values[start : end + 1],
            closed_by="count",
            first_reading_id=str(start),
            last_reading_id=str(end),
        )
        events.append((end, detector.compare(closed)))
    return events


def chain_alarms(rec: Recording, chain: Chain) -> np.ndarray:
    events = window_events(
        rec, chain.window, chain.stride, chain.stattest, chain.threshold, chain.reference
    )
    alarms: list[int] = []
    drifted_run = clean_run = 0
    in_episode = False
    for end, e in events:
        # The trigger's rule (RetrainPolicy.observe): share over its threshold, or a flatline.
        drifted = e.drift_share >= chain.share or bool(e.flatlined)
        drifted_run, clean_run = (drifted_run + 1, 0) if drifted else (0, clean_run + 1)
        end_ns = int(rec.times_ns[end])
        if not in_episode and drifted_run >= chain.consecutive:
            in_episode = True
            alarms.append(end_ns)
        elif in_episode and clean_run >= chain.consecutive:
            in_episode = False
            if chain.alarm == "change":
                alarms.append(end_ns)
    return np.asarray(alarms, dtype="int64")


# --- reference detectors --------------------------------------------------------------------


def every_n_rows(n: int) -> Callable[[Recording], np.ndarray]:
    return lambda rec: rec.scored_ns[::n]


def river_alarms(make: Callable[[], object]) -> Callable[[Recording], np.ndarray]:
    """A River drift detector per feature on standardised values; it sees the reference rows
    first (alarms there are not scored), then the scored rows."""

    def alarms(rec: Recording) -> np.ndarray:
        ref = rec.values[:REFERENCE_ROWS]
        z = (rec.values - ref.mean(axis=0)) / np.maximum(ref.std(axis=0), 1e-9)
        fired = np.zeros(len(z), dtype=bool)
        for j in range(z.shape[1]):
            detector = make()
            for i, x in enumerate(z[:, j]):
                detector.update(float(x))  # type: ignore[attr-defined]
                if detector.drift_detected:  # type: ignore[attr-defined]
                    fired[i] = True
        fired[:REFERENCE_ROWS] = False
        return rec.times_ns[fired]

    return alarms


def random_per_hour(
    recs: Sequence[Recording], free: Sequence[Recording], total: int, seed: int
) -> float:
    """False alarms per hour of random alarms placed on the normal recordings at the rate
    (alarms per scored row) they have on ``recs``."""
    rate = total / sum(len(r.scored_ns) for r in recs)
    size = round(rate * sum(len(f.scored_ns) for f in free))
    return per_hour(free, np.concatenate(random_alarms(free, size, seed + 10_000)))


def random_alarms(recs: Sequence[Recording], total: int, seed: int) -> list[np.ndarray]:
    """``total`` alarms at random scored rows of all files (without replacement)."""
    rng = np.random.default_rng(seed)
    sizes = [len(r.scored_ns) for r in recs]
    picks = np.sort(rng.choice(sum(sizes), size=min(total, sum(sizes)), replace=False))
    out, offset = [], 0
    for rec, size in zip(recs, sizes, strict=True):
        mine = picks[(picks >= offset) & (picks < offset + size)] - offset
        out.append(rec.scored_ns[mine])
        offset += size
    return out


# --- scoring --------------------------------------------------------------------------------


def score(
    name: str, recs: Sequence[Recording], alarms: Sequence[np.ndarray], fph: float
) -> Outcome:
    confusions: list[Confusion] = [
        confusion(detection_windows(r.changepoints_ns, NAB_WIDTH_NS), a)
        for r, a in zip(recs, alarms, strict=True)
    ]
    delays = [d / 1e9 for c in confusions for d in c.delays_ns()]
    return Outcome(
        name=name,
        alarms=int(sum(len(a) for a in alarms)),
        scores=nab_scores(confusions),
        detected=sum(len(c.detections) for c in confusions),
        missed=sum(c.missed for c in confusions),
        false_positives=sum(c.false_positives for c in confusions),
        delay_s=float(np.mean(delays)) if delays else float("nan"),
        false_per_hour=fph,
    )


def per_hour(free: Sequence[Recording], alarms: np.ndarray | Sequence[np.ndarray]) -> float:
    """Alarms per hour over the scored parts of the normal recordings (every alarm false)."""
    hours = sum((r.scored_ns[-1] - r.scored_ns[0]) / 3.6e12 for r in free)
    count = len(alarms) if isinstance(alarms, np.ndarray) else sum(len(a) for a in alarms)
    return count / hours


def on_normal(free: Sequence[Recording], detect: Callable[[Recording], np.ndarray]) -> float:
    return per_hour(free, [detect(f) for f in free])


def median_outcome(name: str, outcomes: list[Outcome]) -> Outcome:
    def med(field: str) -> float:
        return float(statistics.median(getattr(o, field) for o in outcomes))

    return Outcome(
        name=name,
        alarms=int(med("alarms")),
        scores={p: statistics.median(o.scores[p] for o in outcomes) for p in outcomes[0].scores},
        detected=int(med("detected")),
        missed=int(med("missed")),
        false_positives=int(med("false_positives")),
        delay_s=med("delay_s"),
        false_per_hour=med("false_per_hour"),
    )


def evaluate(
    recs: Sequence[Recording], free: Sequence[Recording], chain: Chain, seeds: int
) -> list[Outcome]:
    from river import drift

    ours = [chain_alarms(r, chain) for r in recs]
    rows = [
        score(
            f"Driftline drift chain, alarms: {chain.alarm}",
            recs,
            ours,
            on_normal(free, lambda f: chain_alarms(f, chain)),
        )
    ]
    other = replace(chain, alarm="onset" if chain.alarm == "change" else "change")
    rows.append(
        score(
            f"  same, alarms: {other.alarm}",
            recs,
            [chain_alarms(r, other) for r in recs],
            on_normal(free, lambda f: chain_alarms(f, other)),
        )
    )
    service_test = ("wasserstein", 2.0)  # the drift service's default stattest
    for (stattest, threshold), basis in itertools.product(
        ((chain.stattest, chain.threshold), service_test), ("baseline", "raw")
    ):
        shared = replace(chain, reference=basis, stattest=stattest, threshold=threshold)
        test = "" if stattest == chain.stattest else f", {stattest} {threshold:g}"
        rows.append(
            score(
                f"  same, one shared reference{test}, {basis} basis",
                recs,
                [chain_alarms(r, shared) for r in recs],
                on_normal(free, lambda f, c=shared: chain_alarms(f, c)),  # type: ignore[misc]
            )
        )
    rows.append(score("never fires (null)", recs, [r.scored_ns[:0] for r in recs], 0.0))
    periodic = every_n_rows(60)
    rows.append(
        score("alarm every 60 rows", recs, [periodic(r) for r in recs], on_normal(free, periodic))
    )
    total = rows[0].alarms
    rows.append(
        median_outcome(
            f"random, our rate (median of {seeds} seeds)",
            [
                score(
                    "random",
                    recs,
                    random_alarms(recs, total, seed),
                    random_per_hour(recs, free, total, seed),
                )
                for seed in range(seeds)
            ],
        )
    )
    for name, make in (
        ("River ADWIN per feature", drift.ADWIN),
        ("River PageHinkley per feature", drift.PageHinkley),
    ):
        detect = river_alarms(make)
        rows.append(score(name, recs, [detect(r) for r in recs], on_normal(free, detect)))
    return rows


# --- output ---------------------------------------------------------------------------------


def print_table(title: str, rows: list[Outcome]) -> None:
    table = Table(title=title)
    for column in (
        "detector",
        "alarms",
        "NAB Standard",
        "LowFP",
        "LowFN",
        "CPs found",
        "missed",
        "FPs",
        "mean delay s",
        "false/h normal",
    ):
        table.add_column(column, justify="left" if column == "detector" else "right")
    for o in rows:
        table.add_row(
            o.name,
            str(o.alarms),
            f"{o.scores['Standard']:.2f}",
            f"{o.scores['LowFP']:.2f}",
            f"{o.scores['LowFN']:.2f}",
            str(o.detected),
            str(o.missed),
            str(o.false_positives),
            "-" if np.isnan(o.delay_s) else f"{o.delay_s:.1f}",
            f"{o.false_per_hour:.2f}",
        )
    console.print(table)


def versions() -> str:
    from importlib.metadata import version

    libs = ", ".join(f"{n} {version(n)}" for n in ("numpy", "scipy", "evidently", "river"))
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    return f"Python {platform.python_version()} on {machine}; {libs}"


def select(recs: Sequence[Recording], free: Sequence[Recording], base: Chain) -> Chain:
    """Best LowFP on the tuning files among documented settings with at most one false alarm
    per hour on the anomaly-free recording; ties: fewer false positives."""
    best: tuple[tuple[float, int], Chain] | None = None
    grid = itertools.product(
        (10, 20, 30, 60),  # window
        (2, 5),  # stride
        TESTS,
        (0.125, 0.25, 0.375),  # share
        (1, 2, 3, 5),  # consecutive
        ("onset", "change"),
    )
    for window, stride, (stattest, threshold), share, k, alarm in grid:
        chain = replace(
            base,
            window=window,
            stride=stride,
            stattest=stattest,
            threshold=threshold,
            share=share,
            consecutive=k,
            alarm=alarm,
        )
        o = score("", recs, [chain_alarms(r, chain) for r in recs], 0.0)
        if o.scores["LowFP"] < (best[0][0] if best else -1e9):
            continue  # cannot win: skip the anomaly-free run
        if on_normal(free, lambda f, c=chain: chain_alarms(f, c)) > 1.0:  # type: ignore[misc]
            continue
        key = (o.scores["LowFP"], -o.false_positives)
        if best is None or key > best[0]:
            best = (key, chain)
            console.log(
                f"LowFP {o.scores['LowFP']:.2f}, FPs {o.false_positives}: {chain.describe()}"
            )
    assert best is not None
    return best[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    d = Chain()
    parser.add_argument(
        "--data", type=Path, nargs="+", default=[SKAB / "valve1"], help="folders of recordings"
    )
    parser.add_argument(
        "--normal",
        type=Path,
        nargs="+",
        default=[SKAB / "anomaly-free"],
        help="folders of known-normal recordings (false alarms per hour)",
    )
    parser.add_argument("--tune", type=int, help="first N recordings tune (default: half)")
    parser.add_argument("--window", type=int, default=d.window, help="rows per drift window")
    parser.add_argument("--stride", type=int, default=d.stride, help="rows between windows")
    parser.add_argument("--stattest", default=d.stattest, help="wasserstein or an Evidently name")
    parser.add_argument("--threshold", type=float, default=d.threshold, help="stattest threshold")
    parser.add_argument("--share", type=float, default=d.share, help="drift share threshold")
    parser.add_argument("--consecutive", type=int, default=d.consecutive, help="windows in a row")
    parser.add_argument("--alarm", choices=("onset", "change"), default=d.alarm, help="see below")
    parser.add_argument("--seeds", type=int, default=11, help="seeds of the random reference")
    parser.add_argument("--select", action="store_true", help="grid-search on the tuning part")
    parser.add_argument("--quick", action="store_true", help="4 tuning, 2 held-out files, 3 seeds")
    args = parser.parse_args()

    chain = Chain(
        args.window,
        args.stride,
        args.stattest,
        args.threshold,
        args.share,
        args.consecutive,
        args.alarm,
    )
    from driftline.anomaly.recordings import skab_csvs

    paths = skab_csvs(args.data)
    cut = args.tune if args.tune is not None else len(paths) // 2
    tune_paths, held_paths = paths[:cut], paths[cut:]
    if args.quick:
        tune_paths, held_paths = tune_paths[:4], held_paths[:2]
    seeds = 3 if args.quick else args.seeds
    tune = [load_recording(p) for p in tune_paths]
    held = [load_recording(p) for p in held_paths]
    free = [load_recording(p) for p in skab_csvs(args.normal)]
    if not free:
        parser.error("no known-normal recordings in --normal")
    SHARED["normal"] = Reference("shared", FEATURES, free[0].values[:REFERENCE_ROWS], "normal")
    if args.select:
        chain = select(tune, free, chain)
    console.print(f"chain: {chain.describe()}")
    for title, recs in (
        (f"{_span(tune)} (settings chosen on these)", tune),
        (f"{_span(held)} (held out)", held),
        ("all recordings above", tune + held),
    ):
        if not recs:
            continue
        cps = sum(len(r.changepoints_ns) for r in recs)
        print_table(
            f"{title}: {cps} changepoints, NAB window 60 s right",
            evaluate(recs, free, chain, seeds),
        )
    console.print(versions())
    sys.stdout.flush()


def _span(recs: Sequence[Recording]) -> str:
    return f"{recs[0].name} .. {recs[-1].name}" if recs else "none"


if __name__ == "__main__":
    main()
