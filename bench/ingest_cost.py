"""Where ingest's CPU per reading goes: each stage of ``RawStore.add_messages`` on batches of
simulated readings (``--invalid`` of them malformed, every kind the simulator injects), beside
the decoders the bare consumer of ``stream_throughput.py`` runs (``orjson.loads``, and the strict
``load_json`` it calls) and the old row-by-row INSERT path, in one run, on a fresh MariaDB
database (or SQLite file).

Stages of the new path: the batch's key columns (``raw_batch.BatchKeys``: message and reading
ids, sensor, time, seq), the rows as the database loads them (a LOAD DATA file, or SQLite
tuples), and the load itself (the client's part: the database server's own CPU is not this
process's). Times are CPU time of this process (``time.process_time``) per reading, medians
over ``--batches`` batches of ``--batch`` readings, with the garbage collector tuned as the
services tune it (``service_main.tune_gc``); every batch is new to the store.

    .venv/bin/python bench/ingest_cost.py [--database-url sqlite] [--batches 7] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from validation_cost import as_messages, reading_payloads, versions  # noqa: E402

from driftline.core.profile import load_profile  # noqa: E402
from driftline.core.settings import Settings  # noqa: E402
from driftline.store import bulk_load as raw_bulk  # noqa: E402
from driftline.store.raw_store import RawStore  # noqa: E402
from driftline.streaming.messages import Message  # noqa: E402
from driftline.streaming.service_main import tune_gc  # noqa: E402
from driftline.validation.strict_json import load_json  # noqa: E402

MARIADB = "mysql+pymysql://root@127.0.0.1:3306"


@contextlib.contextmanager
def fresh_store(url: str, tmp: Path) -> Iterator[RawStore]:
    from sqlalchemy import create_engine, text

    if url == "sqlite":
        store = RawStore.from_url(
            f"sqlite:///{tmp / f'raw-{uuid.uuid4().hex[:8]}.db'}", bulk_load=True
        )
        store.create_tables()
        yield store
        store.engine.dispose()
        return
    name = f"driftline_bench_{uuid.uuid4().hex[:8]}"
    server = create_engine(url)
    with server.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    store = RawStore.from_url(f"{url}/{name}", bulk_load=True)
    try:
        store.create_tables()
        yield store
    finally:
        store.engine.dispose()
        with server.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def decode_all(batch: list[Message], decode: Callable[[bytes], object]) -> None:
    for m in batch:
        with contextlib.suppress(ValueError):
            decode(m.value or b"")


def measure(stores: tuple[RawStore, RawStore, RawStore], batch: list[Message]) -> dict[str, float]:
    """Seconds of CPU per reading of each stage on ``batch``: its stages on the first store,
    the old path on the second, the new path whole on the third (each store empty of it)."""
    staged, old, new = stores
    times: dict[str, float] = {}
    clock = time.process_time
    n = len(batch)
    received = datetime.now(UTC).replace(tzinfo=None)
    when = raw_bulk.received_text(received)

    def record(stage: str, started: float) -> float:
        now = clock()
        times[stage] = (now - started) / n
        return now

    t = clock()
    decode_all(batch, orjson.loads)
    t = record("orjson.loads (the decode of a bare consumer)", t)
    decode_all(batch, load_json)
    t = record("strict load_json (what stream_throughput's bare consumer runs)", t)
    keys = staged._keys.columns(batch)  # noqa: SLF001 (the stages of add_messages)
    t = record("key columns (raw_batch)", t)
    if staged.engine.dialect.name == "sqlite":
        rows = raw_bulk.sqlite_rows(batch, keys, when, staged.payload_limit)
        t = record("rows as SQLite tuples", t)
        with staged.engine.begin() as conn:
            raw_bulk.insert_sqlite(conn, rows)
        t = record("executemany (SQLite's own work included)", t)
    else:
        data = staged._load_file.encode(batch, keys, staged.payload_limit)  # noqa: SLF001
        t = record("rows as a LOAD DATA file", t)
        with staged.engine.begin() as conn:
            raw_bulk.load_data(conn, data, n, when)
        t = record("LOAD DATA LOCAL INFILE (client side)", t)
    new.add_messages(batch, received)
    t = record("new path: add_messages", t)
    old.add_messages(batch, received)
    record("old path: add_messages, row-by-row INSERT", t)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=10_000, help="readings per batch")
    parser.add_argument("--batches", type=int, default=7, help="batches measured (medians)")
    parser.add_argument("--invalid", type=float, default=0.02, help="share of malformed readings")
    parser.add_argument(
        "--database-url",
        default=MARIADB,
        help=f"MariaDB server URL (default {MARIADB}) or 'sqlite'",
    )
    parser.add_argument("--quick", action="store_true", help="3 batches")
    args = parser.parse_args()
    if args.quick:
        args.batches = 3
    console = Console(width=110, stderr=True)
    profile = load_profile(Settings().profile_path)
    with console.status("making readings"):
        payloads = reading_payloads(args.batch * (args.batches + 1), profile, invalid=args.invalid)
        messages = as_messages(payloads)
    batches = [messages[i : i + args.batch] for i in range(0, len(messages), args.batch)]
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        stores = tuple(
            stack.enter_context(fresh_store(args.database_url, Path(tmp))) for _ in range(3)
        )
        stores[1].bulk_load = False  # the old path
        tune_gc(args.batch)
        for k, batch in enumerate(batches):
            for stage, value in measure(stores, batch).items():  # type: ignore[arg-type]
                if k:  # the first batch warms up
                    samples.setdefault(stage, []).append(value)
    db = "SQLite" if args.database_url == "sqlite" else "MariaDB"
    table = Table(
        title=f"ingest CPU per reading on {db}, batches of {args.batch:,} ({args.invalid:.0%} "
        f"invalid), medians of {args.batches}"
    )
    for column in ("stage", "us/reading", "x orjson.loads"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    base = statistics.median(samples["orjson.loads (the decode of a bare consumer)"])
    for stage, values in samples.items():
        us = statistics.median(values)
        table.add_row(stage, f"{us * 1e6:.2f}", f"{us / base:.2f}")
    Console(width=120).print(table)
    from importlib.metadata import version

    names = ("SQLAlchemy", "PyMySQL")
    print(f"{versions()}, {', '.join(f'{n} {version(n)}' for n in names)}")


if __name__ == "__main__":
    main()
