"""The labeler's labelled scores per pass: incremental (``driftline.labels.scoring``: each
prediction stores its label; a pass applies the labels recorded since its mark and reads each
model version's newest labelled readings by index) beside the full rescoring every pass did
before (every label joined with every prediction in its range, then the rolling window), same
database, same rows, in one run. Both give the same scores (checked each pass).

Synthetic data: ``--sensors`` sensors, one prediction a second each, ``--hours`` of them; one
labelled task (a verdict and a fault region) every ``--label-every`` minutes of each sensor.
Each timed pass first records one new annotation (the steady state: a few labels between two
passes). Prints the median seconds of a pass over ``--passes`` and the ratio.

    .venv/bin/python bench/label_scoring.py [--database-url sqlite:///...] [--sensors 20]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from driftline.core.records import Prediction
from driftline.labels.annotations import LabelRow
from driftline.labels.candidates import TaskCandidate
from driftline.labels.performance import LabelledScore, join_labels, rolling_scores
from driftline.labels.scoring import LabelledScores
from driftline.labels.store import LabelStore, create_label_tables, labelled_predictions
from driftline.store.raw_store import naive_utc

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = 500


def full_rescore(store: LabelStore, window: int) -> dict[str, LabelledScore]:
    """The pass of before (LabelSync.score until the incremental scores)."""
    lp = labelled_predictions
    spans = store.all_labels()
    predictions: list[dict[str, Any]] = []
    seen: set[str] = set()
    with store.engine.connect() as conn:
        for s in spans:
            for p in conn.execute(
                sa.select(lp).where(
                    lp.c.sensor_id == s["sensor_id"],
                    lp.c.event_ts >= naive_utc(s["start_ts"]),
                    lp.c.event_ts <= naive_utc(s["end_ts"]),
                )
            ).mappings():
                if p["reading_id"] not in seen:
                    seen.add(p["reading_id"])
                    predictions.append(dict(p))
    return rolling_scores(join_labels(predictions, spans), window)


def incremental(scores: LabelledScores, window: int) -> dict[str, LabelledScore]:
    scores.apply_labels()
    scores.prune()
    return scores.scores(window)


def annotate(store: LabelStore, sensor: str, start: datetime, n: int) -> None:
    task = TaskCandidate("anomaly_episode", sensor, start, start + timedelta(minutes=5), "bench")
    store.add_candidates([task], T0)
    regions = [
        (task.start, task.end, "normal"),
        (start + timedelta(minutes=1), start + timedelta(minutes=2), "fault"),
    ]
    rows = [
        LabelRow(f"{n}-{i}", task.key, n, n, "v1", sensor, a, b, label, "op", T0, "pull")
        for i, (a, b, label) in enumerate(regions)
    ]
    store.record(rows, datetime.now(UTC) - timedelta(hours=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url")
    ap.add_argument("--sensors", type=int, default=20)
    ap.add_argument("--hours", type=float, nargs="+", default=[1.0, 4.0, 12.0])
    ap.add_argument("--label-every", type=float, default=30.0, help="minutes")
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, sqlalchemy {sa.__version__}")
    print(
        f"{'hours':>6} {'predictions':>12} {'labels':>7} {'full s':>8} {'incr s':>8} {'ratio':>7}"
    )
    for hours in args.hours:
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            engine = sa.create_engine(url)
            try:
                row = run(engine, args, hours)
            finally:
                if args.database_url:
                    with engine.begin() as conn:
                        for t in ("labelled_predictions", "labels", "label_tasks", "label_marks"):
                            conn.execute(sa.text(f"DELETE FROM {t}"))
                engine.dispose()
        print(
            f"{hours:>6} {row[0]:>12,} {row[1]:>7,} {row[2]:>8.3f} {row[3]:>8.3f} {row[4]:>6.1f}x"
        )


def run(
    engine: sa.Engine, args: argparse.Namespace, hours: float
) -> tuple[int, int, float, float, float]:
    create_label_tables(engine)
    store, scores = LabelStore(engine), LabelledScores(engine, keep=timedelta(days=7))
    rng = random.Random(1)
    seconds = int(hours * 3600)
    sensors = [f"pump-{i:03d}" for i in range(args.sensors)]
    batch: list[Prediction] = []
    for second in range(seconds):
        for s in sensors:
            batch.append(
                Prediction(
                    reading_id=f"{s}-{second}",
                    sensor_id=s,
                    ts=T0 + timedelta(seconds=second),
                    anomaly_probability=0.5,
                    label=int(rng.random() < 0.2),
                    model_name="bench",
                    model_version="1",
                )
            )
        if len(batch) >= 5000:
            scores.add_predictions(batch)
            batch = []
    scores.add_predictions(batch)
    n = 0
    step = timedelta(minutes=args.label_every)
    for s in sensors:
        at = T0
        while at + timedelta(minutes=5) < T0 + timedelta(seconds=seconds):
            n += 1
            annotate(store, s, at, n)
            at += step
    incremental(scores, WINDOW)  # the first pass applies every label once
    full_times, incr_times = [], []
    for p in range(args.passes):
        n += 1
        start = T0 + timedelta(seconds=rng.randrange(max(1, seconds - 400)))
        annotate(store, rng.choice(sensors), start, n)
        t = time.perf_counter()
        before = full_rescore(store, WINDOW)
        full_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        after = incremental(scores, WINDOW)
        incr_times.append(time.perf_counter() - t)
        if {v: vars(s) for v, s in before.items()} != {v: vars(s) for v, s in after.items()}:
            raise SystemExit(f"pass {p}: the scores differ: {before} != {after}")
    full, incr = statistics.median(full_times), statistics.median(incr_times)
    return seconds * len(sensors), 2 * n, full, incr, full / incr


if __name__ == "__main__":
    main()
