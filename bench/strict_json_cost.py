"""What the strict decode of untrusted bytes costs per message, beside its baselines in one run.

Three decoders over the same simulated readings (the wire format a sensor sends): bare
``orjson.loads``; the decode the validator used before (orjson, Python's json for NaN and
Infinity); and ``driftline.parsing.load_json``, which adds the checks of
``strict_json`` (nesting, integers beyond 64 bits, duplicate keys, lone surrogates, encoding).
Medians of ``--repeats`` timed passes over ``--messages`` messages, in microseconds per message.

    .venv/bin/python bench/strict_json_cost.py [--messages 20000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from driftline.core.profile import load_profile
from driftline.core.settings import DEFAULT_PROFILE
from driftline.simulate.signals import SyntheticPump
from driftline.validation.parsing import load_json


def before(raw: bytes) -> Any:
    """The validator's decode before strict_json (for comparison only)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def messages(count: int) -> list[bytes]:
    load_profile(DEFAULT_PROFILE)  # the profile the readings are drawn for
    start = datetime.now(UTC) - timedelta(hours=1)
    out = []
    for i, (_, values, label) in enumerate(SyntheticPump(seed=1).rows(count)):
        doc = {
            "sensor_id": f"pump-{i % 8:03d}",
            "ts": (start + timedelta(milliseconds=20 * i)).isoformat().replace("+00:00", "Z"),
            "seq": i,
            "values": values,
            "label": label,
        }
        out.append(orjson.dumps(doc))
    return out


def median_us(decode: Callable[[bytes], Any], data: list[bytes], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        for raw in data:
            decode(raw)
        times.append((time.process_time() - started) / len(data) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    data = messages(args.messages)
    for raw in data[:100]:  # warm-up, and the three agree
        assert load_json(raw) == before(raw) == orjson.loads(raw)
    rows = [
        ("orjson.loads (baseline)", median_us(orjson.loads, data, args.repeats)),
        ("before: orjson, json fallback", median_us(before, data, args.repeats)),
        ("load_json (strict)", median_us(load_json, data, args.repeats)),
    ]
    base = rows[0][1]
    print(
        f"python {platform.python_version()}, orjson {orjson.__version__}, "
        f"{args.messages:,} messages of {statistics.median(map(len, data)):.0f} bytes, "
        f"median of {args.repeats} passes (CPU time)"
    )
    print(f"{'decoder':32} {'us/message':>10} {'x orjson':>9}")
    for name, us in rows:
        print(f"{name:32} {us:10.2f} {us / base:9.2f}")


if __name__ == "__main__":
    main()
