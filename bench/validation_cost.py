"""Validation cost per 10,000 readings: the validator's batch validation (the real
``ReadingValidator`` on raw Kafka messages: ``validate_wire``, the columnar path the validator
service runs, and ``validate``, the per-message reference path it replaced) against
hand-written vectorized numpy checks of the
same rules on the same messages, side by side in one run, at several batch sizes.

Both start from the raw message bytes: the numpy baseline decodes each message with orjson,
gathers the fields into arrays and checks types, nulls, ranges, known sensors, timestamps and
in-batch duplicates with whole-array operations; it says only valid or invalid. The validator
also says why (pandera, on the rows its numpy screen flags), computes reading ids and builds
the ``ValidReading`` records it publishes. A run asserts that both give every message the same
verdict. The data: simulated pumps' readings, a share of them (``--invalid``, by default 2%
and none) malformed by the simulator's fault injection. Times are CPU time of this process
(both sides are single-threaded), medians of ``--repeats`` calls after a warm-up, with the
garbage collector tuned as the services tune it (``driftline.service_main.tune_gc``).

    .venv/bin/python bench/validation_cost.py [--sizes 1000,10000,50000] [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pandas as pd
from rich.console import Console
from rich.table import Table

from driftline.core.profile import Profile, load_profile
from driftline.core.settings import DEFAULT_PROFILE
from driftline.simulate.inject import MALFORMED_KINDS, malform
from driftline.simulate.plans import sensor_ids
from driftline.simulate.signals import SyntheticPump
from driftline.streaming.messages import Message
from driftline.streaming.service_main import tune_gc
from driftline.validation.batch import ReadingValidator
from driftline.validation.parsing import MAX_SENSOR_ID, OPTIONAL, REQUIRED

console = Console(width=110, stderr=True)


def reading_payloads(
    count: int, profile: Profile, *, sensors: int = 64, invalid: float = 0.02, seed: int = 0
) -> list[tuple[bytes, bytes]]:
    """``count`` wire-format readings as (key, value): ``sensors`` synthetic pumps, one reading
    a second each, ending an hour ago; about ``invalid`` of them malformed (every kind the
    simulator injects)."""
    rng = random.Random(seed)  # nosec B311: simulated data
    ids = sensor_ids(sensors)
    series = [SyntheticPump(seed=seed * 1000 + i).rows() for i in range(sensors)]
    end = datetime.now(UTC) - timedelta(hours=1)
    steps = -(-count // sensors)
    out: list[tuple[bytes, bytes]] = []
    for k in range(count):
        i, seq = k % sensors, k // sensors
        _, values, label = next(series[i])
        ts = end - timedelta(seconds=steps - seq)
        doc: dict[str, object] = {
            "sensor_id": ids[i],
            "ts": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "seq": seq,
            "values": values,
            "label": label,
        }
        if rng.random() < invalid:
            value = malform(rng.choice(MALFORMED_KINDS), doc, profile.features, rng)
        else:
            value = orjson.dumps(doc)
        out.append((ids[i].encode(), value))
    return out


def as_messages(payloads: Sequence[tuple[bytes, bytes]], topic: str = "raw") -> list[Message]:
    return [Message(topic, k % 4, k, key, value) for k, (key, value) in enumerate(payloads)]


class NumpyChecks:
    """The reading rules as whole-array checks: the baseline. Valid or not, no reasons."""

    def __init__(self, profile: Profile, max_message_bytes: int = 64 * 1024) -> None:
        self.profile = profile
        self.features = profile.features
        self.allowed = frozenset(REQUIRED + OPTIONAL)
        self.low = np.array([m.min for m in profile.measurements.values()])
        self.high = np.array([m.max for m in profile.measurements.values()])
        self.max_bytes = max_message_bytes
        self._known: dict[str, bool] = {}

    def valid(self, messages: Sequence[Message], now: datetime) -> np.ndarray:
        n, features = len(messages), self.features
        docs = [_decode(m.value, self.max_bytes) for m in messages]
        empty: dict[str, object] = {}
        docs = [d if type(d) is dict else empty for d in docs]
        ok = np.fromiter(
            (bool(d) and self.allowed.issuperset(d) and "ts" in d for d in docs), bool, n
        )
        sensor = [d.get("sensor_id") for d in docs]
        ok &= np.fromiter(
            (type(s) is str and 0 < len(s) <= MAX_SENSOR_ID and self._is_known(s) for s in sensor),
            bool,
            n,
        )
        ts_text = [d.get("ts") for d in docs]
        ok &= np.fromiter((type(t) is str for t in ts_text), bool, n)
        ts = pd.to_datetime(
            pd.Series([t if type(t) is str else None for t in ts_text], dtype=object),
            utc=True,
            format="ISO8601",
            errors="coerce",
        ).to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT"))
        policy = self.profile.timestamps
        latest = np.datetime64(
            (now + timedelta(seconds=policy.max_future_seconds)).replace(tzinfo=None), "ns"
        )
        earliest = np.datetime64(
            (now - timedelta(seconds=policy.max_age_seconds)).replace(tzinfo=None), "ns"
        )
        ok &= ~np.isnat(ts) & (ts <= latest) & (ts >= earliest)
        seq = [d.get("seq") for d in docs]
        ok &= np.fromiter((s is None or (type(s) is int and 0 <= s < 2**63) for s in seq), bool, n)
        label = [d.get("label") for d in docs]
        ok &= np.fromiter((a is None or (type(a) is int and a in (0, 1)) for a in label), bool, n)
        ok &= np.fromiter((d.get("v", 1) == 1 for d in docs), bool, n)
        values = [d.get("values") for d in docs]
        shape_ok = np.fromiter(
            (type(v) is dict and len(v) == len(features) for v in values), bool, n
        )
        matrix = np.array(
            [
                [v.get(f) for f in features] if ok_row else [0.0] * len(features)
                for v, ok_row in zip(values, shape_ok, strict=True)
            ],
            dtype=object,
        ).reshape(n, len(features))
        is_number = np.vectorize(lambda x: type(x) is float or type(x) is int, otypes=[bool])
        typed = shape_ok & is_number(matrix).all(axis=1)
        numbers = np.where(typed[:, None], matrix, 0.0).astype(np.float64)
        with np.errstate(invalid="ignore"):  # NaN compares False: out of range
            ok &= typed & ((numbers >= self.low) & (numbers <= self.high)).all(axis=1)
        # A reading sent twice in one batch: the later copies are duplicates.
        identity = pd.DataFrame({"s": sensor, "t": ts, "q": pd.Series(seq, dtype=object)})
        ok &= ~(identity.duplicated() & ok)
        return ok

    def _is_known(self, sensor: str) -> bool:
        hit = self._known.get(sensor)
        if hit is None:
            hit = self._known[sensor] = self.profile.is_known_sensor(sensor)
        return hit


def _decode(raw: bytes | None, max_bytes: int) -> object:
    if raw is None or len(raw) > max_bytes:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # the NaN / Infinity literals orjson rejects are invalid values anyway


def time_call(call: Callable[[], object], repeats: int) -> float:
    """Median CPU seconds of ``repeats`` calls, after one warm-up call. CPU time, not wall
    time: both sides are single-threaded, and CPU time is what other processes on a busy
    machine do not inflate."""
    call()
    times = []
    for _ in range(repeats):
        started = time.process_time()
        call()
        times.append(time.process_time() - started)
    return statistics.median(times)


def validator_verdict(profile: Profile, batch: list[Message], now: datetime) -> np.ndarray:
    verdict = ReadingValidator(profile, clock=lambda: now).validate(batch)
    ok = np.zeros(len(batch), dtype=bool)
    ok[[m.offset - batch[0].offset for m, _ in verdict.valid]] = True
    return ok


def versions() -> str:
    from importlib.metadata import version

    libs = ", ".join(
        f"{n} {version(n)}" for n in ("pandera", "pandas", "numpy", "orjson", "msgspec")
    )
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")  # noqa: SIM115
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores "
        f"({model}); {libs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,10000,50000", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per point (median)")
    parser.add_argument(
        "--invalid", default="0.02,0", help="comma-separated shares of malformed readings"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1000,10000 and 3 repeats")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.repeats = "1000,10000", 3
    sizes = [int(s) for s in args.sizes.split(",")]

    profile = load_profile(DEFAULT_PROFILE)
    now = datetime.now(UTC)
    numpy_checks = NumpyChecks(profile)
    tune_gc(max(sizes))  # as the services do at start (batches of the largest size), for both sides
    rows = []
    for share in [float(s) for s in args.invalid.split(",")]:
        console.log(f"generating {max(sizes):,} readings, {share:.0%} malformed")
        messages = as_messages(reading_payloads(max(sizes), profile, invalid=share))
        rows += measure(profile, numpy_checks, messages, sizes, now, args.repeats)

    table = Table(
        title=f"Validation cost per 10,000 readings, CPU ms (medians of {args.repeats} calls)"
    )
    columns = ("batch", "invalid", "validate (before)", "x numpy", "validate_wire (service)")
    for column in (*columns, "x numpy ", "numpy checks"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            f"{r['batch']:,}",
            str(r["invalid"]),
            f"{r['validator_ms_per_10k']:.1f}",
            f"{r['ratio']:.2f}",
            f"{r['wire_ms_per_10k']:.1f}",
            f"{r['wire_ratio']:.2f}",
            f"{r['numpy_ms_per_10k']:.1f}",
        )
    Console(width=110).print(table)
    print(versions())
    if args.json:
        print(json.dumps({"rows": rows, "versions": versions()}))


def measure(
    profile: Profile,
    numpy_checks: NumpyChecks,
    messages: list[Message],
    sizes: list[int],
    now: datetime,
    repeats: int,
) -> list[dict[str, float]]:
    rows = []
    for size in sizes:
        batch = messages[:size]
        expected = numpy_checks.valid(batch, now)
        got = validator_verdict(profile, batch, now)
        assert (expected == got).all(), f"verdicts differ at {np.flatnonzero(expected != got)}"

        # validate() remembers nothing (the service calls remember() after publishing): each
        # call sees every reading as new.
        validator = ReadingValidator(profile, clock=lambda: now)

        wire = validator.validate_wire(batch)
        wire_ok = np.zeros(len(batch), dtype=bool)
        wire_ok[[m.offset - batch[0].offset for m, _ in wire.valid]] = True
        assert (wire_ok == got).all(), f"wire verdicts differ at {np.flatnonzero(wire_ok != got)}"

        def validate(batch: list[Message] = batch, v: ReadingValidator = validator) -> None:
            v.validate(batch)

        def validate_wire(batch: list[Message] = batch, v: ReadingValidator = validator) -> None:
            v.validate_wire(batch)

        console.log(f"batch {size:,}: {int((~got).sum())} invalid; timing")
        validator_s = time_call(validate, repeats)
        wire_s = time_call(validate_wire, repeats)
        numpy_s = time_call(lambda b=batch: numpy_checks.valid(b, now), repeats)
        rows.append(
            {
                "batch": size,
                "invalid": int((~got).sum()),
                "validator_ms_per_10k": validator_s / size * 1e4 * 1e3,
                "wire_ms_per_10k": wire_s / size * 1e4 * 1e3,
                "numpy_ms_per_10k": numpy_s / size * 1e4 * 1e3,
                "ratio": validator_s / numpy_s,
                "wire_ratio": wire_s / numpy_s,
            }
        )

    return rows


if __name__ == "__main__":
    sys.exit(main())
