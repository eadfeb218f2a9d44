"""Anomaly model quality like SKAB's outlier leaderboard, on any folders of SKAB-format CSVs.

SKAB's protocol: in each recording the first N rows (400; the baseline, assumed normal) are
its training part and never scored; the rest are scored and pooled over all recordings.
F1 = TP / (TP + (FP + FN) / 2), FAR = FP / (FP + TN) %, MAR = FN / (FN + TP) %, PR-AUC of the
pooled scores. Rows: each model family as the AutoML search tuned it on the training
recordings, the AutoML pick (``automl-pick``), reference detectors computed in the same run,
and the leaderboard's published rows (cited, not computed here).

    .venv/bin/python bench/model_quality.py --train DIR... --test DIR... [--shift] [--json OUT]
    .venv/bin/python bench/model_quality.py --loro DIR... [--shift]   # leave one recording out

``--shift`` scores the test recordings again at another operating point (each file as a
whole: flow x3, current x2, pressure x1.5, temperatures +10 degC) and prints the F1 change.
``--compare-pooled`` adds the rows the earlier ranking (by pooled CV F1) chooses from the same
trials. ``--normal DIR...`` adds each detector's false-alarm rate on known-normal recordings
(scored the same way: after their own first N rows).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_references import (  # noqa: E402
    CITED,
    RuleFit,
    fit_rule,
    robust_z_alarms,
    skab_mset,
    skab_t2q,
)

import driftline  # noqa: E402
from driftline.anomaly.automl import Search, SearchResult, Trial, run_search  # noqa: E402
from driftline.anomaly.automl_ray import SEARCHER, ray_session  # noqa: E402
from driftline.anomaly.model import FAMILIES, LABEL_FREE, AnomalyModel, describe  # noqa: E402
from driftline.anomaly.recordings import Recording, load_recordings  # noqa: E402
from driftline.anomaly.scores import outlier_score  # noqa: E402
from driftline.core.profile import load_profile  # noqa: E402
from driftline.core.settings import DEFAULT_PROFILE, Settings  # noqa: E402
from driftline.training.scoring import pr_auc  # noqa: E402

SHIFT_BY_UNIT = {"l/min": ("x", 3.0), "A": ("x", 2.0), "bar": ("x", 1.5), "degC": ("+", 10.0)}


@dataclass
class Pool:
    """Pooled labels, alarms and scores of one row of the table."""

    y: list[np.ndarray] = field(default_factory=list)
    alarms: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    note: str = ""

    def add(self, y: np.ndarray, alarms: np.ndarray, scores: np.ndarray) -> None:
        self.y.append(y)
        self.alarms.append(alarms.astype(bool))
        self.scores.append(scores.astype("float64"))

    def row(self, name: str, kind: str) -> dict[str, object]:
        y, a, s = (np.concatenate(v) for v in (self.y, self.alarms, self.scores))
        o = outlier_score(y, a)
        return {
            "name": name,
            "kind": kind,
            "f1": round(o.f1, 4),
            "far": round(o.far, 2),
            "mar": round(o.mar, 2),
            "pr_auc": round(pr_auc(y, s), 4),
            "rows": o.rows,
            "model": self.note,
        }


def load_file(path: Path) -> pd.DataFrame:
    """One SKAB recording as the reading contract's frame (sensor_id, ts, label, measurements);
    bench/serving.py trains its champion from these."""
    raw = pd.read_csv(path, sep=";")
    frame = raw.drop(columns=["datetime", "anomaly", "changepoint"])
    frame.insert(0, "sensor_id", f"valve1-{path.stem}")
    frame.insert(1, "ts", pd.to_datetime(raw["datetime"], utc=True))
    frame.insert(2, "label", raw["anomaly"].astype("float64"))
    return frame


def shifted(recording: Recording, units: dict[str, str], measurements: list[str]) -> Recording:
    """The whole file at another operating point; its baseline is learned again from it."""
    import pandas as pd

    from driftline.anomaly.baseline import from_first_readings

    values = recording.values.copy()
    for j, m in enumerate(measurements):
        op = SHIFT_BY_UNIT.get(units[m])
        if op is not None:
            values[:, j] = values[:, j] * op[1] if op[0] == "x" else values[:, j] + op[1]
    frame = pd.DataFrame(values, columns=measurements)
    baseline = from_first_readings(frame, recording.name, measurements, recording.baseline.count)
    assert baseline is not None
    return Recording(recording.name, values, baseline, recording.scored_from, recording.labels)


def score_into(
    pools: dict[str, Pool], test: list[Recording], models: dict[str, AnomalyModel], rule: RuleFit
) -> None:
    for r in test:
        y = r.scored_labels()
        cut = r.scored_from
        for name, model in models.items():
            s = model.score(r.baseline, r.values)[cut:]
            pools.setdefault(name, Pool()).add(y, s >= model.spec.threshold, s)
            pools[name].note = describe(model.spec)
        pools.setdefault("always anomaly", Pool()).add(y, np.ones_like(y), np.ones(len(y)))
        a = rule.alarms(r.values)[cut:]
        pools.setdefault("one-threshold rule", Pool(note=rule.describe())).add(y, a, a)
        for name, fn in (
            ("T-squared+Q (SKAB method)", skab_t2q),
            ("MSET (causal)", skab_mset),
            ("robust z-score", robust_z_alarms),
        ):
            alarms, scores = fn(r)
            pools.setdefault(name, Pool()).add(y, alarms[cut:], scores[cut:])


def select(train: list[Recording], args: argparse.Namespace, sets: list) -> dict[str, AnomalyModel]:
    """Per family its best trial, and the AutoML pick, each trained on all of ``train``."""
    on_trial = None
    if args.mlflow:
        from driftline.anomaly.tracking import mlflow_trial_logger

        on_trial = mlflow_trial_logger(args.mlflow, f"bench-{int(time.time())}-{args.searches}")
    args.searches += 1
    result, search = run_search(
        train,
        args.budget,
        max_trials=args.max_trials,
        folds=args.folds,
        max_far=args.max_far,
        seed=args.seed,
        measurement_sets=sets,
        on_trial=on_trial,
    )
    models: dict[str, AnomalyModel] = {}
    for family in FAMILIES:
        models[family] = search.fit(result.best([family]).spec)
    pick = result.pick()
    models["automl-pick"] = models[pick.spec.family]
    args.picks[pick.spec.family] = args.picks.get(pick.spec.family, 0) + 1
    # The same selection as the pick's, among the label-free families only.
    label_free = result.pick(sorted(LABEL_FREE)).spec.family
    models["best label-free"] = models[label_free]
    args.label_free_picks[label_free] = args.label_free_picks.get(label_free, 0) + 1
    if args.compare_pooled:
        models |= pooled_selection(result, search, models)
        pooled_pick = SearchResult(_pooled(result.trials)).pick().spec.family
        args.pooled_picks[pooled_pick] = args.pooled_picks.get(pooled_pick, 0) + 1
    args.trials += len(result.trials)
    return models


POOLED = " (pooled CV F1)"


def _pooled(trials: list[Trial]) -> list[Trial]:
    return [replace(t, typical_f1=None) for t in trials]


def pooled_selection(
    result: SearchResult, search: Search, models: dict[str, AnomalyModel]
) -> dict[str, AnomalyModel]:
    """The selection before 2026-12-03, from the same trials: each trial ranked by its pooled
    CV F1; the pick at equal effort, and "best label-free" the best label-free trial."""
    pooled = SearchResult(_pooled(result.trials))
    out: dict[str, AnomalyModel] = {}
    for family in FAMILIES:
        spec = pooled.best([family]).spec
        same = models[family].spec == spec
        out[family + POOLED] = models[family] if same else search.fit(spec)
    out["automl-pick" + POOLED] = out[pooled.pick().spec.family + POOLED]
    out["best label-free" + POOLED] = out[pooled.best(sorted(LABEL_FREE)).spec.family + POOLED]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, nargs="+", help="folders of training recordings")
    parser.add_argument("--test", type=Path, nargs="+", help="folders of test recordings")
    parser.add_argument("--loro", type=Path, nargs="+", help="leave-one-recording-out folders")
    parser.add_argument(
        "--shift", action="store_true", help="also score at another operating point"
    )
    parser.add_argument(
        "--normal", type=Path, nargs="+", help="folders of known-normal recordings (no labels)"
    )
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    parser.add_argument(
        "--budget",
        type=float,
        default=Settings().automl_budget_seconds,
        help="AutoML seconds per search (default: DRIFTLINE_AUTOML_BUDGET_SECONDS)",
    )
    parser.add_argument("--max-trials", type=int, default=200, help="AutoML trials per search")
    parser.add_argument("--folds", type=int, default=4, help="group-wise CV folds")
    parser.add_argument("--mlflow", help="MLflow tracking URI: record every AutoML trial there")
    parser.add_argument("--max-far", type=float, default=15.0, help="AutoML's FAR limit, %%")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--compare-pooled",
        action="store_true",
        help="also rows chosen from the same trials by their pooled CV F1 (the old ranking)",
    )
    parser.add_argument("--baseline-readings", type=int, default=Settings().baseline_readings)
    args = parser.parse_args()
    if not args.loro and not (args.train and args.test):
        parser.error("give --train and --test folders, or --loro folders")
    args.trials = 0
    args.searches = 0
    args.picks = {}
    args.label_free_picks = {}
    args.pooled_picks = {}

    profile = load_profile(DEFAULT_PROFILE)
    measurements = profile.features
    units = {m: profile.measurements[m].unit for m in measurements}
    # Candidate measurement sets: all, or all but one kind of measurement (by unit).
    sets: list = [None] + [
        tuple(m for m in measurements if units[m] != u) for u in sorted(set(units.values()))
    ]
    t0 = time.monotonic()
    plain: dict[str, Pool] = {}
    moved: dict[str, Pool] = {}
    quiet: dict[str, Pool] = {}
    normal = [
        Recording(r.name, r.values, r.baseline, r.scored_from, np.zeros(len(r.values), dtype=int))
        for r in load_recordings(args.normal or [], measurements, args.baseline_readings)
    ]
    if args.loro:
        data = load_recordings(args.loro, measurements, args.baseline_readings)
        folds = [([r for r in data if r is not held], [held]) for held in data]
        setup = f"leave-one-recording-out over {len(data)} recordings of {_names(args.loro)}"
    else:
        train = load_recordings(args.train, measurements, args.baseline_readings)
        test = load_recordings(args.test, measurements, args.baseline_readings)
        folds = [(train, test)]
        setup = f"train {_names(args.train)} ({len(train)}), test {_names(args.test)} ({len(test)})"
    for fit_on, score_on in folds[:1]:
        unlabelled = {r.name for r in [*fit_on, *score_on] if r.labels is None}
        if unlabelled:
            parser.error(
                f"recordings without an anomaly column: {sorted(unlabelled)[:5]}; give "
                "known-normal recordings with --normal"
            )
    with ray_session():  # one Ray for every fold's search, not one each
        for fit_on, score_on in folds:
            models = select(fit_on, args, sets)
            rule = fit_rule(fit_on, measurements)
            score_into(plain, score_on, models, rule)
            score_into(quiet, normal, models, rule)
            if args.shift:
                moved_on = [shifted(r, units, measurements) for r in score_on]
                score_into(moved, moved_on, models, rule)
    seconds = time.monotonic() - t0

    rows = _rows(plain)
    print(
        f"SKAB protocol: first {args.baseline_readings} rows of each recording = its baseline "
        f"(never scored); {setup}"
    )
    print(
        f"AutoML ({SEARCHER}): {args.trials} trials in {args.searches} searches "
        f"(budget {args.budget:.0f}s "
        f"or {args.max_trials} trials each), {args.folds} "
        f"group folds, FAR limit {args.max_far:.0f}%; run {seconds:.0f}s"
    )
    print("AutoML picks: " + ", ".join(f"{f} x{n}" for f, n in sorted(args.picks.items())))
    print(
        "best label-free picks: "
        + ", ".join(f"{f} x{n}" for f, n in sorted(args.label_free_picks.items()))
    )
    if args.compare_pooled:
        print(
            "AutoML picks by pooled CV F1: "
            + ", ".join(f"{f} x{n}" for f, n in sorted(args.pooled_picks.items()))
        )
    print(
        f"driftline {driftline.__version__}, numpy {np.__version__}, "
        f"python {platform.python_version()}"
    )
    shifted_rows = {r["name"]: r for r in _rows(moved)} if args.shift else {}
    normal_far = {r["name"]: r["far"] for r in _rows(quiet) if r["kind"] != "cited"}
    for r in rows:
        r["normal_far"] = normal_far.get(str(r["name"]))
    _print(rows, shifted_rows)
    if args.json:
        doc = {
            "setup": setup,
            "rows": rows,
            "shifted": list(shifted_rows.values()),
            "budget_seconds": args.budget,
            "trials": args.trials,
            "picks": args.picks,
            "label_free_picks": args.label_free_picks,
            "pooled_picks": args.pooled_picks,
        }
        args.json.write_text(json.dumps(doc, indent=2))


def _names(folders: list[Path]) -> str:
    return ", ".join(p.name for p in folders)


def _rows(pools: dict[str, Pool]) -> list[dict[str, object]]:
    kinds = {name: "family" for name in (*FAMILIES, "automl-pick", "best label-free")}
    kinds |= {name + POOLED: "family" for name in kinds}
    rows = [pools[n].row(n, kinds.get(n, "reference")) for n in pools]
    return rows + [dict(r, kind="cited") for r in CITED] if pools else rows


def _print(rows: list[dict[str, object]], moved: dict[str, dict[str, object]]) -> None:
    head = f"{'detector':<44} {'F1':>6} {'FAR %':>7} {'MAR %':>7} {'PR-AUC':>7} {'normal FAR':>10}"
    if moved:
        head += f" | {'shift F1':>8} {'FAR %':>7} {'dF1':>6}"
    print(head)
    print("-" * len(head))
    for r in rows:
        label = r["name"] + (" (cited)" if r["kind"] == "cited" else "")
        auc = f"{r['pr_auc']:>7.3f}" if r["pr_auc"] is not None else f"{'-':>7}"
        far = f"{r['far']:>7.1f}" if r["far"] is not None else f"{'-':>7}"
        mar = f"{r['mar']:>7.1f}" if r["mar"] is not None else f"{'-':>7}"
        nf = r.get("normal_far")
        normal = f"{nf:>10.1f}" if isinstance(nf, float) else f"{'-':>10}"
        line = f"{label:<44} {r['f1']:>6.3f} {far} {mar} {auc} {normal}"
        if r["name"] in moved and r["kind"] != "cited":
            m = moved[r["name"]]
            line += f" | {m['f1']:>8.3f} {m['far']:>7.1f} {m['f1'] - r['f1']:>+6.3f}"
        print(line)
    for r in rows:
        if r.get("model"):
            print(f"  {r['name']}: {r['model']}")


if __name__ == "__main__":
    main()
