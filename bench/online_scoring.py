"""Serving's model call: the anomaly families (each reading against its sensor's baseline, from
its last readings; ``driftline.anomaly.bundle.OnlineScorer``) beside the rolling-feature
XGBoost path they replace (``SensorHistory`` inputs + one booster call), same readings. The
families' features are computed for all sensors of a batch in one pass
(``driftline.anomaly.batched``); ``per sensor`` rows run the path of before, a sensor at a time
(``relative_features`` and the smoothing per sensor), on the same scorer state.

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
from driftline.anomaly.bundle import PENDING, READY, ModelBundle, OnlineScorer, Scored
from driftline.anomaly.bundle import alarm_probability as probability_of
from driftline.anomaly.features import relative_features
from driftline.anomaly.model import AnomalyModel
from driftline.anomaly.recordings import Recording
from driftline.core.profile import load_profile
from driftline.core.records import ValidReading, epoch_ns
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


def score_per_sensor(scorer: OnlineScorer, readings: list[ValidReading]) -> list[Scored]:
    """``OnlineScorer.score`` as it was before the batched features: each sensor's features,
    detector call and smoothing on their own (a booster still scores all rows in one call)."""
    measurements = scorer.bundle.measurements
    stamps = np.array([epoch_ns(r.ts) for r in readings], dtype="int64")
    values = np.array([[r.values.get(m, np.nan) for m in measurements] for r in readings])
    by_sensor: dict[str, list[int]] = {}
    for i, r in enumerate(readings):
        by_sensor.setdefault(r.sensor_id, []).append(i)
    out = [Scored(None, PENDING, None)] * len(readings)
    new = {}
    for sensor, index in by_sensor.items():
        ts, first = np.unique(stamps[index], return_index=True)
        new[sensor] = (ts, values[np.asarray(index)[first]])
    merged = scorer.recent.merge(new)
    model = scorer.bundle.model
    work = []
    for sensor, index in by_sensor.items():
        baseline = scorer.baseline(sensor)
        if baseline is None:
            continue
        ts_all, values_all = merged[sensor]
        where = np.searchsorted(ts_all, stamps[index])
        lo = max(int(where.min()) - model.spec.smooth + 1, 0)
        features = relative_features(values_all, baseline, model.spec.recipe, len(values_all) - lo)
        work.append((index, baseline, where - lo, features))
    if model.booster is not None:
        stacked = np.vstack([f for *_, f in work])
        scores = np.asarray(model.booster.get_booster().inplace_predict(stacked))
        raw = np.split(scores, np.cumsum([len(f) for *_, f in work])[:-1])
    else:
        raw = [model.raw_scores(b, f) for _, b, _, f in work]
    for (index, baseline, where, _), sensor_raw in zip(work, raw, strict=True):
        p = probability_of(model.smoothed(sensor_raw), model.spec.threshold)
        for i, at in zip(index, where, strict=True):
            out[i] = Scored(float(p[at]), READY, baseline.version)
    return out


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
        bundle = bundle_of(family, data)
        old = OnlineScorer(bundle)
        scorer = OnlineScorer(bundle)
        name = f"{family} against each sensor's baseline"
        # Taken in turns batch by batch, so a change in the machine's load falls on both alike.
        before, after = [], []
        for i, batch in enumerate(batches):
            t0 = time.perf_counter()
            expected = score_per_sensor(old, batch)
            t1 = time.perf_counter()
            got = scorer.score(batch)
            t2 = time.perf_counter()
            if got != expected and not np.allclose(
                [g.probability for g in got], [e.probability for e in expected], rtol=1e-9
            ):
                raise SystemExit(f"{family}: the batched scores differ from the per-sensor ones")
            if i >= warm:
                before.append(t1 - t0)
                after.append(t2 - t1)
        rows.append((f"{name}, per sensor (before)", np.array(before)))
        rows.append((f"{name}, one pass for the batch's sensors", np.array(after)))

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
