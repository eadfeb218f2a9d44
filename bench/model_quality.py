"""Model quality on SKAB valve1: XGBoost on the pipeline's features vs a one-threshold rule.

Files are consecutive 20-minute recordings of one test bench, so the split is by time:
the model trains on files 0-7 and is tested on files 8-15, which it never sees (neither
parameters nor window were chosen on them; defaults were checked by leave-one-file-out
cross-validation on files 0-7 only). The same code path as the train step: the data side's
``add_features`` with settings.feature_window, ``modeling.fit_model`` with tuned-or-default
parameters, and the 0.5 decision threshold.

    .venv/bin/python bench/model_quality.py [--skab-dir DIR] [--window N] [--params FILE.json]
    .venv/bin/python bench/model_quality.py --select    # choose window + params on files 0-7
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.profile import load_profile
from driftline.settings import DEFAULT_PROFILE, Settings
from driftline.training import modeling
from driftline.training.features import add_features
from driftline.training.scoring import precision_recall_f1

ROOT = Path(__file__).resolve().parents[1]
SKAB_VALVE1 = ROOT.parent / "shared" / "data" / "skab" / "data" / "valve1"
TRAIN_FILES = list(range(0, 8))
TEST_FILES = list(range(8, 16))


def load_file(path: Path) -> pd.DataFrame:
    """One SKAB recording as the contract's frame: sensor_id, ts (UTC), label, measurements."""
    raw = pd.read_csv(path, sep=";")
    frame = raw.drop(columns=["datetime", "anomaly", "changepoint"])
    frame.insert(0, "sensor_id", f"valve1-{path.stem}")
    frame.insert(1, "ts", pd.to_datetime(raw["datetime"], utc=True))
    frame.insert(2, "label", raw["anomaly"].astype("float64"))
    return frame


def fit_threshold_rule(frame: pd.DataFrame, columns: list[str]) -> tuple[str, float, int]:
    """Baseline: the one column, threshold and direction with the best F1 on the train rows."""
    y = modeling.labels(frame)
    best = ("", 0.0, 1, -1.0)
    for column in columns:
        values = frame[column].to_numpy(dtype="float64")
        for cut in np.unique(np.quantile(values, np.linspace(0.01, 0.99, 99))):
            for sign in (1, -1):
                f1 = precision_recall_f1(y, (sign * (values - cut) >= 0).astype(float))[2]
                if f1 > best[3]:
                    best = (column, float(cut), sign, f1)
    return best[0], best[1], best[2]


def rule_scores(frame: pd.DataFrame, rule: tuple[str, float, int]) -> np.ndarray:
    column, cut, sign = rule
    return (sign * (frame[column].to_numpy(dtype="float64") - cut) >= 0).astype(float)


def select(skab_dir: Path, features: list[str]) -> tuple[int, dict[str, Any]]:
    """Window and parameters with the best mean F1 of forward-chaining folds on the train files
    (fit on files 0-3, score 4-7; fit on 0-5, score 6-7). The test files are never read."""
    folds = [(TRAIN_FILES[:4], TRAIN_FILES[4:]), (TRAIN_FILES[:6], TRAIN_FILES[6:])]
    best: tuple[float, int, dict[str, Any]] = (-1.0, 0, {})
    for window in (30, 60):
        frames = {
            n: add_features(load_file(skab_dir / f"{n}.csv"), features, window) for n in TRAIN_FILES
        }
        for depth, trees, child, cols in itertools.product(
            (2, 3, 4, 6), (100, 300), (1, 10), (0.5, 0.9)
        ):
            params = {
                **modeling.DEFAULT_PARAMS,
                "max_depth": depth,
                "n_estimators": trees,
                "min_child_weight": child,
                "colsample_bytree": cols,
            }
            f1s = []
            for fit_files, val_files in folds:
                fit = pd.concat([frames[n] for n in fit_files])
                val = pd.concat([frames[n] for n in val_files])
                model = modeling.fit_model(
                    modeling.model_inputs(fit, features), modeling.labels(fit), params
                )
                scores = modeling.anomaly_scores(model, modeling.model_inputs(val, features))
                f1s.append(precision_recall_f1(modeling.labels(val), scores)[2])
            if float(np.mean(f1s)) > best[0]:
                best = (float(np.mean(f1s)), window, params)
    print(f"selected on train files: window {best[1]}, params {best[2]} (CV F1 {best[0]:.3f})")
    return best[1], best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skab-dir", type=Path, default=SKAB_VALVE1)
    parser.add_argument("--window", type=int, default=Settings().feature_window)
    parser.add_argument("--params", type=Path, help="JSON of XGBoost parameters (tuned)")
    parser.add_argument("--select", action="store_true", help="choose window/params on files 0-7")
    args = parser.parse_args()

    features = load_profile(DEFAULT_PROFILE).features
    params = json.loads(args.params.read_text()) if args.params else modeling.DEFAULT_PARAMS
    source = f"from {args.params}" if args.params else "defaults"
    if args.select:
        args.window, params = select(args.skab_dir, features)
        source = "selected by forward-chaining CV on the train files"
    frames = {
        n: add_features(load_file(args.skab_dir / f"{n}.csv"), features, args.window)
        for n in TRAIN_FILES + TEST_FILES
    }
    train = pd.concat([frames[n] for n in TRAIN_FILES], ignore_index=True)
    t0 = time.monotonic()
    model = modeling.fit_model(
        modeling.model_inputs(train, features), modeling.labels(train), params
    )
    fit_seconds = time.monotonic() - t0
    rule = fit_threshold_rule(train, modeling.input_columns(features))

    rows: list[tuple[str, int, float, tuple[float, ...], tuple[float, ...]]] = []
    truth, xgb_all, rule_all = [], [], []
    for n in TEST_FILES:
        test = frames[n]
        y = modeling.labels(test)
        xgb = modeling.anomaly_scores(model, modeling.model_inputs(test, features))
        base = rule_scores(test, rule)
        truth.append(y)
        xgb_all.append(xgb)
        rule_all.append(base)
        rows.append(
            (
                f"{n}.csv",
                len(y),
                y.mean(),
                precision_recall_f1(y, xgb),
                precision_recall_f1(y, base),
            )
        )
    y, xgb, base = (np.concatenate(a) for a in (truth, xgb_all, rule_all))
    rows.append(
        ("overall", len(y), y.mean(), precision_recall_f1(y, xgb), precision_recall_f1(y, base))
    )

    print(
        f"SKAB valve1: train files {TRAIN_FILES[0]}-{TRAIN_FILES[-1]} ({len(train)} rows), "
        f"test files {TEST_FILES[0]}-{TEST_FILES[-1]}; window {args.window}; "
        f"params {source}; "
        f"fit {fit_seconds:.1f}s"
    )
    print(f"baseline: {rule[0]} {'>=' if rule[2] > 0 else '<='} {rule[1]:.4g} (best F1 on train)")
    print()
    header = f"{'test file':<10} {'rows':>5} {'anom':>5} | {'XGB P':>6} {'R':>6} {'F1':>6} | "
    print(header + f"{'rule P':>6} {'R':>6} {'F1':>6}")
    print("-" * (len(header) + 20))
    for name, n_rows, share, (p, r, f), (bp, br, bf) in rows:
        print(
            f"{name:<10} {n_rows:>5} {share:>5.2f} | {p:>6.3f} {r:>6.3f} {f:>6.3f} | "
            f"{bp:>6.3f} {br:>6.3f} {bf:>6.3f}"
        )


if __name__ == "__main__":
    main()
