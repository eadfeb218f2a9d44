"""What scoring the streamed readings costs the labeler (``labels_score_streamed``): its intake
of a batch of messages (``LabelIntake.take``: decode, store with each prediction's label) for

- served: the predictions serving published (the labeler's work before, the baseline),
- streamed: the valid readings, scored with the champion (``StreamedScorer``: serving's path on
  a pca-t2q bundle, each sensor against its baseline) and stored as streamed,
- both: the same readings served and streamed, served first (a served prediction kept; the
  streamed one inserted as a duplicate and ignored).

Synthetic pumps (``SyntheticPump``), ``--sensors`` interleaved, one reading a second each, in
batches of ``--batch``; every reading labelled (one task per sensor over the whole run), so each
stored prediction is joined with a label. Prints the median seconds per batch after a warm-up,
readings per second and the ratio to served, on SQLite (or ``--database-url``), over
``--rounds`` rounds of the three in turn.

    .venv/bin/python bench/streamed_scoring.py [--database-url mysql+pymysql://...] [--sensors 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftline.anomaly.automl import defaults
from driftline.anomaly.baseline import from_first_readings
from driftline.anomaly.bundle import ModelBundle, OnlineScorer
from driftline.anomaly.model import AnomalyModel
from driftline.anomaly.recordings import Recording
from driftline.anomaly.registered import LoadedVersion
from driftline.core.profile import load_profile
from driftline.core.records import Prediction, ValidReading, reading_id
from driftline.core.settings import DEFAULT_PROFILE, Settings
from driftline.core.topics import Topics
from driftline.labels.annotations import LabelRow
from driftline.labels.candidates import TaskCandidate
from driftline.labels.intake import LabelIntake, candidate_config
from driftline.labels.scoring import LabelledScores
from driftline.labels.store import LabelStore, create_label_tables
from driftline.labels.streamed import StreamedScorer
from driftline.serving.champion import LoadedModel
from driftline.simulate.signals import SyntheticPump
from driftline.streaming.messages import Message

FEATURES = load_profile(DEFAULT_PROFILE).features
T0 = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
BASELINE = 400
TOPICS = Topics("bench")


def pump(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rows = list(SyntheticPump(seed=seed, fault_share=0.1).rows(n))
    values = np.array([[v[f] for f in FEATURES] for _, v, _ in rows], dtype="float64")
    return values, np.array([label for *_, label in rows], dtype="int64")


def champion(data: dict[str, np.ndarray]) -> LoadedModel:
    """A pca-t2q bundle with each sensor's baseline, loaded as serving loads a champion."""
    fit = []
    for i in range(3):
        values, labels = pump(900 + i, 2000)
        start = from_first_readings(pd.DataFrame(values, columns=FEATURES), "t", FEATURES, BASELINE)
        fit.append(Recording(f"t{i}", values, start, BASELINE, labels))
    model = AnomalyModel.fit(defaults("pca-t2q", tuple(FEATURES)), fit)
    baselines = {
        s: from_first_readings(pd.DataFrame(v[:BASELINE], columns=FEATURES), s, FEATURES, BASELINE)
        for s, v in data.items()
    }
    bundle = ModelBundle(model, baselines, tuple(FEATURES))
    return LoadedModel("bench", "1", "bench", LoadedVersion(bundle), OnlineScorer(bundle))


def messages(data: dict[str, np.ndarray], seconds: int) -> tuple[list[Message], list[Message]]:
    """The same readings as valid readings and as served predictions."""
    valid, served = [], []
    for t in range(seconds):
        ts = T0 + timedelta(seconds=t)
        for s, values in data.items():
            rid = reading_id(s, ts, t)
            reading = ValidReading(
                reading_id=rid,
                sensor_id=s,
                ts=ts,
                seq=t,
                values=dict(zip(FEATURES, map(float, values[BASELINE + t]), strict=True)),
            )
            p = 0.9 if t % 50 < 5 else 0.1
            prediction = Prediction(
                reading_id=rid,
                sensor_id=s,
                ts=ts,
                anomaly_probability=p,
                label=int(p >= 0.5),
                model_name="bench",
                model_version="1",
            )
            key = s.encode()
            valid.append(Message(TOPICS.valid_readings, 0, len(valid), key, reading.to_bytes()))
            served.append(Message(TOPICS.predictions, 0, len(served), key, prediction.to_bytes()))
    return valid, served


def label_everything(store: LabelStore, sensors: list[str], seconds: int) -> None:
    for n, s in enumerate(sensors):
        end = T0 + timedelta(seconds=seconds)
        candidate = TaskCandidate("anomaly_episode", s, T0, end, "bench")
        store.add_candidates([candidate], T0)
        store.record(
            [
                LabelRow(f"{n}", candidate.key, n, n, "v1", s, T0, end, "normal", "b", T0, "pull"),
            ],
            datetime.now(UTC),
        )


def timed(intake: LabelIntake, batches: list[list[Message]], warm: int) -> list[float]:
    out = []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        intake.take(batch)
        if i >= warm:
            out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database-url")
    ap.add_argument("--sensors", type=int, default=20)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    seconds = args.batch * args.batches // args.sensors
    data = {f"pump-{i:03d}": pump(100 + i, BASELINE + seconds)[0] for i in range(args.sensors)}
    valid, served = messages(data, seconds)

    def split(ms: list[Message]) -> list[list[Message]]:
        return [ms[i : i + args.batch] for i in range(0, len(ms), args.batch)]

    settings = Settings()
    results: dict[str, list[float]] = {"served": [], "streamed": [], "both": []}
    # Rounds of the three in turn: a change in the machine's load falls on each alike.
    rounds = [name for _ in range(args.rounds) for name in results]
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        for name in rounds:
            engine = sa.create_engine(url)
            create_label_tables(engine)
            with engine.begin() as conn:
                for t in ("labelled_predictions", "labels", "label_tasks", "label_marks"):
                    conn.execute(sa.text(f"DELETE FROM {t}"))
            store = LabelStore(engine)
            label_everything(store, list(data), seconds)
            model = champion(data)
            scorer = StreamedScorer(load_profile(DEFAULT_PROFILE), settings, lambda m=model: m)
            intake = LabelIntake(
                store, TOPICS, candidate_config(settings), LabelledScores(engine), scorer
            )
            if name == "served":
                results[name] += timed(intake, split(served), args.warm)
            elif name == "streamed":
                results[name] += timed(intake, split(valid), args.warm)
            else:
                both = [s + v for s, v in zip(split(served), split(valid), strict=True)]
                results[name] += timed(intake, both, args.warm)
            with engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT COUNT(*) FROM labelled_predictions")).scalar()
            if rows != len(valid):
                raise SystemExit(f"{name}: {rows} stored predictions, expected {len(valid)}")
            engine.dispose()
    print(
        f"python {platform.python_version()}, sqlalchemy {sa.__version__}, numpy "
        f"{np.__version__}; {args.sensors} sensors, batches of {args.batch} readings "
        f"({args.batch * 2} messages for 'both'), {args.batches - args.warm} timed in each "
        f"of {args.rounds} rounds; "
        f"{url.split(':')[0]}"
    )
    base = statistics.median(results["served"])
    print(f"{'intake of a batch':<44} {'median s':>9} {'readings/s':>11} {'ratio':>7}")
    for name, label in (
        ("served", "served predictions (before; baseline)"),
        ("streamed", "valid readings scored with the champion"),
        ("both", "each reading served and streamed"),
    ):
        med = statistics.median(results[name])
        print(f"{label:<44} {med:>9.4f} {args.batch / med:>11,.0f} {med / base:>6.2f}x")


if __name__ == "__main__":
    main()
