"""Serving's model call: the anomaly families (each reading against its sensor's baseline, from
its last readings; ``driftline.anomaly.bundle.OnlineScorer``) beside the rolling-feature
XGBoost path they replace (``SensorHistory`` inputs + one booster call), same readings.

Synthetic pumps (``SyntheticPump``); ``--sensors`` pumps interleaved, sent in batches of
``--batch`` readings, as adaptive batches reach the model. Reports the median and p95 time per
batch and per reading after a warm-up (each sensor's history full), and the ratio to the
rolling-feature path. No server, no HTTP: the model call alone.

    .venv/bin/python bench/online_scoring.py [--sensors 20] [--batch 64] [--batches 200]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from driftline.anomaly.automl import defaults
from driftline.anomaly.baseline import from_first_readings
from driftline.anomaly.bundle import ModelBundle, OnlineScorer
from driftline.anomaly.model import AnomalyModel
from driftline.anomaly.recordings import Recording
from driftline.core.profile import load_profile
from driftline.core.records import ValidReading
from driftline.core.settings import DEFAULT_PROFILE
from driftline.serving.history import SensorHistory
from driftline.simulate.signals import SyntheticPump
from driftline.training import modeling

FEATURES = load_profile(DEFAULT_PROFILE).features
START = datetime(2026, 1, 1, tzinfo=UTC)


def pump_rows(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rows = list(SyntheticPump(seed=seed, fault_share=0.1).rows(n))
    values = np.array([[v[f] for f in FEATURES] for _, v, _ in rows], dtype="float64")
    return values, np.array([label for _, _, label in rows], dtype="int64")


def stream(sensors: int, per_sensor: int) -> tuple[list[ValidReading], dict[str, np.ndarray]]:
    data = {f"pump-{i:03d}": pump_rows(100 + i, per_sensor + 400)[0] for i in range(sensors)}
    readings = [
        ValidReading(
            reading_id=f"{s}-{t}",
            sensor_id=s,
            ts=START + timedelta(seconds=t),
            seq=t,
            values=dict(zip(FEATURES, map(float, data[s][400 + t]), strict=True)),
        )
        for t in range(per_sensor)
        for s in data
    ]
    return readings, data


def trained_xgb_rolling(window: int) -> object:
    from driftline.training.features import add_features

    frames = []
    for i in range(4):
        values, labels = pump_rows(900 + i, 3000)
        frame = pd.DataFrame(values, columns=FEATURES)
        frame.insert(0, "sensor_id", f"p{i}")
        frame.insert(1, "ts", [START + timedelta(seconds=t) for t in range(len(frame))])
        frame["label"] = labels
        frames.append(frame)
    featured = add_features(pd.concat(frames), FEATURES, window)
    model = modeling.fit_model(
        modeling.model_inputs(featured, FEATURES), modeling.labels(featured), {}, n_jobs=1
    )
    model.get_booster().set_param({"nthread": 1})
    return model


def bundle_of(family: str, data: dict[str, np.ndarray]) -> ModelBundle:
    baselines = {}
    for s, values in data.items():
        frame = pd.DataFrame(values[:400], columns=FEATURES)
        baselines[s] = from_first_readings(frame, s, FEATURES, 400)
    train = []
    for i in range(4):
        values, labels = pump_rows(900 + i, 3000)
        frame = pd.DataFrame(values[:400], columns=FEATURES)
        baseline = from_first_readings(frame, f"p{i}", FEATURES, 400)
        train.append(Recording(f"p{i}", values, baseline, 400, labels))  # type: ignore[arg-type]
    model = AnomalyModel.fit(defaults(family, tuple(FEATURES)), train)
    if model.booster is not None:
        model.booster.get_booster().set_param({"nthread": 1})
    return ModelBundle(model, baselines, tuple(FEATURES))  # type: ignore[arg-type]


def timed(call, batches: list[list[ValidReading]], warm: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        call(batch)
        if i >= warm:
            out.append(time.perf_counter() - t0)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()
    window = 30
    per_sensor = (args.batches * args.batch) // args.sensors + 1
    readings, data = stream(args.sensors, per_sensor)
    batches = [
        readings[i : i + args.batch] for i in range(0, args.batches * args.batch, args.batch)
    ]
    warm = (2 * 64 * args.sensors) // args.batch + 1  # every sensor's history full

    rows = []
    history = SensorHistory(FEATURES, window)
    booster = trained_xgb_rolling(window)

    def rolling(batch: list[ValidReading]) -> None:
        modeling.anomaly_scores(booster, history.model_inputs(batch))

    base = timed(rolling, batches, warm)
    rows.append(("xgboost on rolling features (before)", base))
    for family in ("pca-t2q", "mset", "xgboost"):
        scorer = OnlineScorer(bundle_of(family, data))
        rows.append(
            (f"{family} against each sensor's baseline", timed(scorer.score, batches, warm))
        )

    import xgboost

    print(
        f"{args.sensors} sensors, batches of {args.batch}, {len(base)} timed batches; "
        f"numpy {np.__version__}, xgboost {xgboost.__version__}"
    )
    print("| model call | median ms/batch | p95 ms/batch | us/reading | x before |")
    print("|---|---|---|---|---|")
    reference = float(np.median(base))
    for name, t in rows:
        median = float(np.median(t))
        print(
            f"| {name} | {1e3 * median:.2f} | {1e3 * float(np.percentile(t, 95)):.2f} | "
            f"{1e6 * median / args.batch:.0f} | {median / reference:.1f} |"
        )


if __name__ == "__main__":
    main()
