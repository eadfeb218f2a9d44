"""Where serving's time per reading goes, stage by stage, in one process (no HTTP): a request
of N readings through each step the service takes (strict decoding, the middleware's wrapping,
BentoML's input and output models, the columnar batch check, features, the model, the
predictions, the middleware's answer), beside the steps of the plain ASGI baseline
(``bench/plain_asgi.py``). The model is an XGBoost classifier fitted on the pipeline's features
of SKAB valve1, as ``bench/serving.py`` registers it. Medians of ``--repeats`` timings.

    .venv/bin/python bench/serving_stages.py [--per-request 1,10,100] [--repeats 30]
"""

from __future__ import annotations

import argparse
import operator
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from pydantic import TypeAdapter, create_model
from rich.console import Console
from rich.table import Table

from driftline.core.profile import load_profile
from driftline.core.records import Prediction, epoch_ns, reading_id
from driftline.core.settings import Settings
from driftline.serving.champion import LoadedModel, one_thread
from driftline.serving.history import SensorHistory
from driftline.serving.path import ServingPath, answers, as_json, checked_items, tag
from driftline.training import modeling
from driftline.training.features import add_features
from driftline.validation.strict_json import load_json

BENCH = Path(__file__).resolve().parent
SKAB_VALVE1 = BENCH.parents[1] / "shared" / "data" / "skab" / "data" / "valve1"
SENSORS = 64
console = Console(width=120)


def fitted_model(settings: Settings, skab_dir: Path) -> LoadedModel:
    from model_quality import load_file

    features = load_profile(settings.profile_path).features
    frame = add_features(load_file(skab_dir / "0.csv"), features, settings.feature_window)
    model = modeling.fit_model(
        modeling.model_inputs(frame, features), modeling.labels(frame), {}, n_jobs=2
    )
    one_thread(model)
    return LoadedModel(settings.model_name, "1", "bench", model)


class Readings:
    """Request bodies of new readings from SENSORS pumps, a millisecond apart."""

    def __init__(self, features: list[str]) -> None:
        self.features = features
        self.i = 0
        self.start = datetime.now(UTC) - timedelta(hours=2)
        self.rng = np.random.default_rng(0)

    def body(self, n: int) -> bytes:
        docs = []
        for _ in range(n):
            self.i += 1
            ts = self.start + timedelta(milliseconds=self.i)
            docs.append(
                {
                    "sensor_id": f"pump-{self.i % SENSORS:03d}",
                    "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "seq": self.i,
                    "values": {f: float(self.rng.uniform(1, 2)) for f in self.features},
                }
            )
        return orjson.dumps(docs)


def timed(step: Callable[[Any], Any], inputs: list[Any]) -> tuple[float, list[Any]]:
    """Median seconds of ``step`` over ``inputs``, and its outputs."""
    times, outputs = [], []
    for value in inputs:
        t = time.perf_counter()
        outputs.append(step(value))
        times.append(time.perf_counter() - t)
    return statistics.median(times), outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-request", default="1,10,100", help="readings a request")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--skab-dir", type=Path, default=SKAB_VALVE1)
    args = parser.parse_args()
    args.per_request = [int(n) for n in args.per_request.split(",")]

    settings = Settings()
    profile = load_profile(settings.profile_path)
    features = profile.features
    with console.status("fitting the model"):
        model = fitted_model(settings, args.skab_dir)
    path = ServingPath(
        profile,
        feature_window=settings.feature_window,
        threshold=settings.serving_threshold,
        max_message_bytes=settings.max_message_bytes,
        model=lambda: model,
    )
    history = SensorHistory(features, settings.feature_window)  # the baseline's own
    values_of = operator.itemgetter(*features)
    api_input = create_model("Input", readings=(list[dict[str, Any]], ...))
    api_output = TypeAdapter(list[dict[str, Any]])
    readings = Readings(features)
    for _ in range(3 * SENSORS):  # every sensor with a full history first, in both
        warm = orjson.loads(readings.body(10))
        path.score(tag(warm, "warm"))
        history.inputs(
            [r["sensor_id"] for r in warm],
            np.array([epoch_ns(datetime.fromisoformat(r["ts"])) for r in warm], dtype="int64"),
            np.array([values_of(r["values"]) for r in warm], dtype="float64"),
        )

    table = Table(
        title=f"Serving's steps in one process, µs per reading (medians of {args.repeats})"
    )
    table.add_column("step")
    for n in args.per_request:
        table.add_column(f"{n} a request", justify="right")
    rows: dict[str, list[str]] = {}

    def add(name: str, seconds: float, n: int) -> None:
        rows.setdefault(name, []).append(f"{seconds * 1e6 / n:,.1f}")

    for n in args.per_request:
        bodies = [readings.body(n) for _ in range(args.repeats)]
        total = 0.0

        def step(name: str, fn: Callable[[Any], Any], inputs: list[Any], n: int = n) -> list[Any]:
            nonlocal total
            seconds, out = timed(fn, inputs)
            total += seconds
            add(name, seconds, n)
            return out

        # The service: middleware, BentoML's models, the scoring path, the middleware again.
        decoded = step("strict JSON decoding (load_json)", load_json, bodies)
        inner = step(
            "middleware: wrap, tag, encode",
            lambda d: orjson.dumps({"readings": tag(checked_items(d, 1000), uuid.uuid4().hex)}),
            decoded,
        )
        items = step(
            "BentoML input model (pydantic)",
            lambda b: api_input.model_validate_json(b).readings,  # type: ignore[attr-defined]
            inner,
        )
        checked = step(
            "batch check as columns", lambda i: path.checker.check([x["reading"] for x in i]), items
        )
        inputs = step(
            "features (SensorHistory.inputs)",
            lambda c: path.history.inputs(c.sensor_ids, c.stamps, c.values),
            checked,
        )
        probabilities = step("model call", model.anomaly_probabilities, inputs)
        outs = step(
            "predictions as JSON",
            lambda a: [
                as_json(
                    Prediction(
                        reading_id=r.reading_id,
                        sensor_id=r.sensor_id,
                        ts=r.ts,
                        seq=r.seq,
                        anomaly_probability=float(p),
                        label=int(p >= 0.5),
                        model_name=model.name,
                        model_version=model.version,
                    )
                )
                for r, p in zip(a[0].readings, a[1], strict=True)
            ],
            list(zip(checked, probabilities, strict=True)),
        )
        encoded = step("BentoML output (pydantic)", api_output.dump_json, outs)
        step(
            "middleware: answer",
            lambda e: orjson.dumps(answers(orjson.loads(e))),
            encoded,
        )
        add("service, all steps", total, n)

        # The baseline's steps.
        total = 0.0
        docs = step("baseline: orjson.loads", orjson.loads, bodies)

        def columns(d: list[dict[str, Any]]) -> tuple[Any, ...]:
            stamps = [datetime.fromisoformat(r["ts"]).astimezone(UTC) for r in d]
            return (
                d,
                stamps,
                [r["sensor_id"] for r in d],
                np.array([epoch_ns(t) for t in stamps], dtype="int64"),
                np.array([values_of(r["values"]) for r in d], dtype="float64"),
            )

        cols = step("baseline: columns", columns, docs)
        base_inputs = step("baseline: features", lambda c: history.inputs(c[2], c[3], c[4]), cols)
        base_p = step("baseline: model call", model.anomaly_probabilities, base_inputs)

        def answer(a: tuple[Any, ...]) -> bytes:
            c, p = a
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            return orjson.dumps(
                [
                    {
                        "v": 1,
                        "reading_id": reading_id(s, t, r.get("seq")),
                        "sensor_id": s,
                        "ts": r["ts"],
                        "seq": r.get("seq"),
                        "anomaly_probability": float(q),
                        "label": int(q >= 0.5),
                        "model_name": model.name,
                        "model_version": model.version,
                        "predicted_at": now,
                    }
                    for r, s, t, q in zip(c[0], c[2], c[1], p, strict=True)
                ]
            )

        step("baseline: answer", answer, list(zip(cols, base_p, strict=True)))
        add("baseline, all steps", total, n)

    for name, cells in rows.items():
        table.add_row(name, *cells)
    console.print(table)


if __name__ == "__main__":
    main()
