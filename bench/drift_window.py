"""Cost of one drift window, and how many sensors one drift worker keeps up with.

1. Cost per window of ``--rows`` readings x 8 features against a reference of as many rows
   (SKAB: the reference from the anomaly-free recording, the window from valve1), side by side
   in one run: the drift service's detector (``DriftDetector.compare`` on a ``ClosedWindow``,
   the code path the service runs per closed window) with its default normed Wasserstein and
   with "ks"; a plain numpy two-sample KS statistic per feature (sort both, searchsorted: the
   least any per-feature distribution test can cost, "the limit"); and an Evidently ``Report``
   with ``DataDriftPreset``. Medians of ``--repeats`` calls; each ratio is to the limit.
2. Decision agreement: over ``--windows`` windows of ``--agree-rows`` readings (a third of them
   shifted on 1-3 features by known multiples of the reference's std, the rest as recorded),
   the share of per-feature drift decisions of our detector equal to those of an Evidently
   ``Report(DataDriftPreset(method=..., threshold=...))`` with the same stattest and threshold.
3. Sensors per worker: in-process, one core, no Kafka I/O. Per reading: the handler's decode
   of the JSON message into a ``ValidReading`` and its duplicate check, ``SensorWindows.add``
   (closing a window copies it into an array), and the detector's compare of each closed window
   (``--window-size`` readings, the service default, against the anomaly-free reference)
   divided by the window size (with the default stattest, and with "ks" instead). At 1
   reading/s per sensor, one worker sustains 1 / (seconds per reading) sensors.

The machine may be shared: read the ratios, not the absolute times.

    .venv/bin/python bench/drift_window.py [--rows 5000] [--repeats 15] [--quick]
    .venv/bin/python bench/drift_window.py --parts sensors    # one table only
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from driftline.core.profile import load_profile
from driftline.core.recent_ids import RecentIds
from driftline.core.records import ValidReading, reading_id
from driftline.core.settings import DEFAULT_PROFILE, Settings
from driftline.drift.detector import DriftDetector
from driftline.drift.reference import Reference
from driftline.drift.windows import ClosedWindow, SensorWindows

ROOT = Path(__file__).resolve().parents[1]
SKAB = ROOT.parent / "shared" / "data" / "skab" / "data"
FEATURES = load_profile(DEFAULT_PROFILE).features
console = Console(width=120)


def skab_frames(skab: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    free = pd.read_csv(skab / "anomaly-free" / "anomaly-free.csv", sep=";")[FEATURES]
    valve1 = pd.concat(
        [pd.read_csv(skab / "valve1" / f"{n}.csv", sep=";")[FEATURES] for n in range(16)],
        ignore_index=True,
    )
    return free, valve1


def closed(values: np.ndarray, i: int = 0) -> ClosedWindow:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i)
    return ClosedWindow("pump-001", start, start, values, "count", f"a{i}", f"b{i}")


def numpy_ks(reference: np.ndarray, window: np.ndarray) -> list[float]:
    """Two-sample KS statistic per feature: sort both, searchsorted (scipy's own first step)."""
    out = []
    for j in range(reference.shape[1]):
        a, b = np.sort(reference[:, j]), np.sort(window[:, j])
        both = np.concatenate((a, b))
        cdf_a = a.searchsorted(both, "right") / a.size
        cdf_b = b.searchsorted(both, "right") / b.size
        out.append(float(np.max(np.abs(cdf_a - cdf_b))))
    return out


def evidently_report(
    reference: pd.DataFrame, window: pd.DataFrame, stattest: str, threshold: float
) -> dict[str, tuple[float, bool]]:
    """Per column (score, drifted) of a DataDriftPreset Report (as tests/unit/test_drift_stats)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    dd = DataDefinition(numerical_columns=list(reference.columns))
    snap = Report([DataDriftPreset(method=stattest, threshold=threshold)], include_tests=True).run(
        current_data=Dataset.from_pandas(window.reset_index(drop=True), data_definition=dd),
        reference_data=Dataset.from_pandas(reference.reset_index(drop=True), data_definition=dd),
    )
    d = snap.dict()
    tests = [t for t in d["tests"] if t["id"] == "drift"]
    failed = {t["metric_config"]["metric_id"]: t["status"] == "FAIL" for t in tests}
    out = {}
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            assert cfg["method"] == stattest and cfg["threshold"] == threshold
            out[cfg["column"]] = (float(m["value"]), failed[m["id"]])
    return out


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- 1. cost per window ---------------------------------------------------------------------


def cost_table(free: pd.DataFrame, valve1: pd.DataFrame, rows: int, repeats: int) -> None:
    ref_frame, win_frame = free.iloc[:rows], valve1.iloc[:rows]
    ref, win = ref_frame.to_numpy("float64"), win_frame.to_numpy("float64")
    reference = Reference("ref-bench", FEATURES, ref, "anomaly-free")
    window = closed(win)
    results: list[tuple[str, float, float]] = []  # name, seconds per window, setup seconds

    limit = median_seconds(lambda: numpy_ks(ref, win), repeats)
    results.append(("numpy two-sample KS statistic (the limit)", limit, 0.0))
    for stattest, threshold in (("wasserstein", 0.1), ("ks", 0.05)):
        t0 = time.perf_counter()
        detector = DriftDetector(reference, stattest, threshold, share_threshold=0.375)
        setup = time.perf_counter() - t0
        cost = median_seconds(lambda d=detector: d.compare(window), repeats)
        results.append((f"DriftDetector.compare, {stattest}", cost, setup))
    report_repeats = max(3, repeats // 3)
    for stattest, threshold in (("wasserstein", 0.1), ("ks", 0.05)):
        cost = median_seconds(
            lambda s=stattest, t=threshold: evidently_report(ref_frame, win_frame, s, t),
            report_repeats,
        )
        results.append((f"Evidently Report(DataDriftPreset), {stattest}", cost, 0.0))

    table = Table(
        title=f"Cost per window: {rows:,} readings x {len(FEATURES)} features vs a {rows:,}-row "
        f"reference (medians of {repeats} calls; Reports {report_repeats})"
    )
    for column in ("implementation", "ms per window", "x limit", "setup per reference ms"):
        table.add_column(column, justify="left" if column == "implementation" else "right")
    for name, cost, setup in results:
        table.add_row(name, f"{cost * 1e3:.2f}", f"{cost / limit:.2f}", f"{setup * 1e3:.1f}")
    console.print(table)


# --- 2. decision agreement ------------------------------------------------------------------


def agreement_windows(
    free: pd.DataFrame, valve1: pd.DataFrame, ref_rows: int, rows: int, count: int, seed: int
) -> tuple[pd.DataFrame, list[tuple[pd.DataFrame, str]]]:
    rng = np.random.default_rng(seed)
    reference = free.iloc[:ref_rows].reset_index(drop=True)
    std = reference.std(ddof=0)
    pools = [free.iloc[ref_rows:], valve1]
    out = []
    for i in range(count):
        pool = pools[i % 2]
        start = int(rng.integers(0, len(pool) - rows))
        window = pool.iloc[start : start + rows].reset_index(drop=True).copy()
        label = "recorded"
        if i % 3 == 0:
            shifted = rng.choice(FEATURES, size=int(rng.integers(1, 4)), replace=False)
            for f in shifted:
                k = float(rng.choice([-3.0, -1.0, -0.3, -0.1, 0.1, 0.3, 1.0, 3.0]))
                window[f] = window[f] + k * std[f]
            label = "shifted"
        out.append((window, label))
    return reference, out


def agreement_table(free: pd.DataFrame, valve1: pd.DataFrame, rows: int, count: int) -> None:
    reference, windows = agreement_windows(free, valve1, 4000, rows, count, seed=7)
    ref = Reference("ref-agree", FEATURES, reference.to_numpy("float64"), "anomaly-free")
    table = Table(
        title=f"Per-feature decisions, ours vs Evidently Report: {count} windows of {rows} "
        f"readings ({sum(lbl == 'shifted' for _, lbl in windows)} shifted), 4,000-row reference"
    )
    for column in (
        "stattest, threshold",
        "decisions",
        "drifted (ours / Evidently)",
        "equal",
        "share equal",
        "max |score diff|",
    ):
        table.add_column(column, justify="left" if column.startswith("stat") else "right")
    for stattest, threshold in (("wasserstein", 0.1), ("wasserstein", 2.0), ("ks", 0.05)):
        detector = DriftDetector(ref, stattest, threshold, share_threshold=0.375)
        equal = total = ours_drifted = theirs_drifted = 0
        max_diff = 0.0
        for i, (window, _) in enumerate(windows):
            event = detector.compare(closed(window.to_numpy("float64"), i))
            theirs = evidently_report(reference, window, stattest, threshold)
            for f in event.features:
                score, drifted = theirs[f.feature]
                equal += f.drifted == drifted
                ours_drifted += f.drifted
                theirs_drifted += drifted
                total += 1
                max_diff = max(max_diff, abs(f.statistic - score))
        table.add_row(
            f"{stattest}, {threshold:g}",
            str(total),
            f"{ours_drifted} / {theirs_drifted}",
            str(equal),
            f"{equal / total:.4f}",
            f"{max_diff:.1e}",
        )
    console.print(table)


# --- 3. sensors per worker ------------------------------------------------------------------


def readings(sensors: int, per_sensor: int, values: np.ndarray) -> list[bytes]:
    """Wire-format ValidReadings, round-robin over sensors, one per second per sensor."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for k in range(per_sensor):
        ts = t0 + timedelta(seconds=k)
        for s in range(sensors):
            sensor = f"pump-{s:05d}"
            row = values[(k * sensors + s) % len(values)]
            out.append(
                ValidReading(
                    reading_id=reading_id(sensor, ts, k),
                    sensor_id=sensor,
                    ts=ts,
                    seq=k,
                    values=dict(zip(FEATURES, map(float, row), strict=True)),
                ).to_bytes()
            )
    return out


def sensors_table(free: pd.DataFrame, valve1: pd.DataFrame, size: int, repeats: int) -> None:
    settings = Settings()  # type: ignore[call-arg]
    values = valve1.to_numpy("float64")
    sensors = 200
    messages = readings(sensors, size, values)  # every sensor closes exactly one window
    decoded = [ValidReading.model_validate_json(m) for m in messages]

    def decode_and_dedup() -> None:
        recent = RecentIds(settings.dedup_capacity)
        for m in messages:
            r = ValidReading.model_validate_json(m)
            if r.reading_id not in recent:
                recent.add(r.reading_id)

    def bookkeeping() -> list[ClosedWindow]:
        windows = SensorWindows(
            FEATURES, size, settings.drift_window_seconds, settings.drift_min_window_size
        )
        out: list[ClosedWindow] = []
        for i, r in enumerate(decoded):
            out += windows.add(r, ("valid", 0), i, 0.0)
        assert len(out) == sensors
        return out

    reference = Reference("ref-free", FEATURES, free.to_numpy("float64"), "anomaly-free")
    detector = DriftDetector(
        reference,
        settings.drift_stattest,
        settings.drift_stattest_threshold,
        settings.drift_share_threshold,
    )
    window = bookkeeping()[0]
    compare = median_seconds(lambda: detector.compare(window), repeats * 20)
    ks = DriftDetector(reference, "ks", 0.05, settings.drift_share_threshold)
    compare_ks = median_seconds(lambda: ks.compare(window), repeats * 5)
    per_reading = {
        "decode JSON + duplicate check": median_seconds(decode_and_dedup, repeats) / len(messages),
        "SensorWindows.add (with closing)": median_seconds(bookkeeping, repeats) / len(messages),
        f"compare ({compare * 1e3:.2f} ms) / {size} readings": compare / size,
    }
    table = Table(
        title=f"One drift worker, one core, in-process (no Kafka I/O): windows of {size} readings, "
        f"{settings.drift_stattest} vs the {len(reference):,}-row anomaly-free reference"
    )
    for column in ("per reading", "us", "sensors at 1 reading/s"):
        table.add_column(column, justify="left" if column == "per reading" else "right")
    for name, seconds in per_reading.items():
        table.add_row(name, f"{seconds * 1e6:.2f}", f"{1 / seconds:,.0f}")
    windows_only = per_reading["SensorWindows.add (with closing)"] + compare / size
    total = sum(per_reading.values())
    table.add_row("windows + compare", f"{windows_only * 1e6:.2f}", f"{1 / windows_only:,.0f}")
    table.add_row("all of the above", f"{total * 1e6:.2f}", f"{1 / total:,.0f}")
    with_ks = total - compare / size + compare_ks / size
    table.add_row(
        f"all, with ks instead ({compare_ks * 1e3:.2f} ms per window)",
        f"{with_ks * 1e6:.2f}",
        f"{1 / with_ks:,.0f}",
    )
    console.print(table)


def versions() -> str:
    from importlib.metadata import version

    libs = ", ".join(
        f"{n} {version(n)}" for n in ("numpy", "scipy", "pandas", "evidently", "pydantic")
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    return f"Python {platform.python_version()} on {machine}; {libs}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("--skab-dir", type=Path, default=SKAB, help="SKAB's data directory")
    parser.add_argument("--rows", type=int, default=5000, help="readings per window (cost)")
    parser.add_argument("--repeats", type=int, default=15, help="calls per timing (median)")
    parser.add_argument("--windows", type=int, default=60, help="windows for agreement")
    parser.add_argument("--agree-rows", type=int, default=300, help="readings per window there")
    parser.add_argument(
        "--window-size",
        type=int,
        default=Settings().drift_window_size,  # type: ignore[call-arg]
        help="readings per window for the sensors-per-worker table (the service default)",
    )
    parser.add_argument("--quick", action="store_true", help="5 repeats, 12 agreement windows")
    parser.add_argument(
        "--parts", default="cost,agreement,sensors", help="which tables, comma-separated"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.windows = 5, 12

    free, valve1 = skab_frames(args.skab_dir)
    parts = args.parts.split(",")
    if "cost" in parts:
        cost_table(free, valve1, args.rows, args.repeats)
    if "agreement" in parts:
        agreement_table(free, valve1, args.agree_rows, args.windows)
    if "sensors" in parts:
        sensors_table(free, valve1, args.window_size, args.repeats)
    console.print(versions())


if __name__ == "__main__":
    main()
