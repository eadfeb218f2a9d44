"""ingest's write path with one and with two batches in flight, side by side: the same
batches of simulated readings (2% malformed, every kind) landed by ``RawStore.add_messages``
on worker threads, as the ingest service does, into a fresh MariaDB database per run, one
batch at a time and two at a time (the next decoded while the database loads the last, on a
second connection). No Kafka: what overlapping buys on the database's side alone. Rows/s of
wall clock, medians; the runs alternate.

    .venv/bin/python bench/ingest_overlap.py [--readings 150000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from validation_cost import as_messages, reading_payloads, versions  # noqa: E402

from driftline.core.profile import load_profile  # noqa: E402
from driftline.core.settings import Settings  # noqa: E402
from driftline.store.raw_store import RawStore  # noqa: E402
from driftline.streaming.messages import Message  # noqa: E402
from driftline.streaming.service_main import tune_gc  # noqa: E402

MARIADB = "mysql+pymysql://root@127.0.0.1:3306"


async def land(store: RawStore, batches: list[list[Message]], in_flight: int) -> float:
    """Seconds to land every batch, ``in_flight`` at a time, in order of start."""
    slots = asyncio.Semaphore(in_flight)

    async def one(batch: list[Message]) -> None:
        async with slots:
            await asyncio.to_thread(store.add_messages, batch)

    started = time.perf_counter()
    await asyncio.gather(*(one(b) for b in batches))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=150_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--database-url", default=MARIADB, help="server URL (MariaDB/MySQL)")
    args = parser.parse_args()
    messages = as_messages(reading_payloads(args.readings, load_profile(Settings().profile_path)))
    batches = [messages[i : i + args.batch] for i in range(0, len(messages), args.batch)]
    tune_gc(args.batch)
    server = create_engine(args.database_url)
    seconds: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for in_flight in seconds:
            name = f"driftline_bench_{uuid.uuid4().hex[:8]}"
            with server.begin() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
            try:
                store = RawStore.from_url(f"{args.database_url}/{name}", bulk_load=True)
                store.create_tables()
                seconds[in_flight].append(asyncio.run(land(store, batches, in_flight)))
                store.engine.dispose()
            finally:
                with server.begin() as conn:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    one = args.readings / statistics.median(seconds[1])
    print(f"{args.readings:,} readings, batches of {args.batch:,}, medians of {args.repeats}")
    for in_flight, runs in seconds.items():
        rate = args.readings / statistics.median(runs)
        print(f"  {in_flight} in flight: {rate:,.0f} rows/s ({rate / one:.2f}x one at a time)")
    print(f"load average {os.getloadavg()[0]:.1f}; {versions()}")


if __name__ == "__main__":
    main()
