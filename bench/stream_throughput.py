"""Stream throughput: readings/s through the ingest and validator services on the loopback
broker, against the limit (a bare aiokafka consumer that only fetches the same messages and
decodes each with ``orjson.loads``, as issue 20 defines it; "bare-strict" is the same consumer
with the strict ``load_json`` instead, the baseline of earlier runs) and a naive per-message
faust-streaming agent doing the same validation one message at a time, side by side in one
run.

The run publishes ``--readings`` simulated readings (``--invalid`` of them malformed) once to
the raw topic of the embedded broker (Tansu; or the Kafka at KAFKA_BOOTSTRAP_SERVERS), then each
target, a process of its own, consumes them from the beginning with a consumer group of its
own. ingest and validator are the real services (``services/*/service.py`` ``run()`` through
their entry point ``service_main``, with their default settings), one process each, started
together, as deployed; ingest writes to a fresh raw store each run (a new MariaDB database by
default). The faust agent validates with the same
``ReadingValidator``, one message per call, and publishes the same records; it consumes only
the first ``--faust-readings`` (it is slow). The drift target is the real drift service
(``services/drift``, its Kafka I/O included) consuming the valid topic, onto which the parent
publishes the validator's verdict on the same readings (and a reference from their values).

Every target uses a 2 s consumer session timeout on the embedded broker
(``--session-timeout-ms``): Tansu holds each JoinGroup for half the session timeout, so
faust's default of 60 s made its first join take 30 s (docs/kafka.md). Group joins and
start-up are not measured anyway ("start s" shows them): each target's window runs from its
first consumed batch to its last message, and its CPU seconds (user + system, all threads, from
``time.process_time``) are those of that window. readings/s per core = readings / CPU seconds.
"x bare" is readings/s over the bare consumer's, "core x bare" readings per CPU second over
the bare consumer's. ingest + validator run in parallel, one
process each: their pair runs at the slower one's rate, and its CPU is the sum of both. Every
target runs ``--repeats`` times; the table shows medians. The broker and the database server
use CPU too, counted for no target: on a 2-core machine they share the cores with it. A second
table shows where the machine's CPU went during each target's window (sampled every 50 ms):
the targets', the broker's, the database server's (MariaDB's serves every session on the
machine) and everything else's, against the cores x the window's seconds.

    .venv/bin/python bench/stream_throughput.py [--readings 500000] [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson
import psutil
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from cpu_share import CpuSampler, CpuShare, find_broker, find_database  # noqa: E402
from validation_cost import reading_payloads, versions  # noqa: E402

from driftline.core import metrics  # noqa: E402
from driftline.core.profile import Profile, load_profile  # noqa: E402
from driftline.core.settings import Settings  # noqa: E402
from driftline.core.topics import Topics  # noqa: E402
from driftline.platform.broker import EmbeddedBroker  # noqa: E402
from driftline.platform.services import load_service  # noqa: E402
from driftline.streaming.kafka import ensure_topics, make_consumer, make_producer  # noqa: E402
from driftline.streaming.messages import Message  # noqa: E402
from driftline.streaming.service_main import service_main  # noqa: E402
from driftline.validation.parsing import load_json  # noqa: E402

console = Console(width=110, stderr=True)
MARIADB = "mysql+pymysql://root@127.0.0.1:3306"
TARGETS = ("bare", "bare-strict", "services", "drift", "faust")
SESSION_TIMEOUT_MS = 2000  # Tansu holds a JoinGroup for half of it (docs/kafka.md)


@dataclass(frozen=True)
class Window:
    """What one process consumed between its first batch and its last message."""

    process: str
    readings: int  # consumed inside the window (the first batch is before it)
    seconds: float
    cpu_seconds: float
    start_seconds: float  # from the process's start to its first batch: imports, group join
    started_at: float = 0.0  # the window, as time.time()
    ended_at: float = 0.0
    marks: tuple[tuple[float, float, int], ...] = ()  # (time.time(), CPU s, total) per batch

    def at(self, when: float) -> tuple[float, float]:
        """(CPU seconds, messages consumed) at ``when``, interpolated between batches."""
        marks = self.marks
        if not marks or when <= marks[0][0]:
            return (marks[0][1], marks[0][2]) if marks else (0.0, 0.0)
        for (t0, c0, n0), (t1, c1, n1) in itertools.pairwise(marks):
            if t0 <= when <= t1:
                share = (when - t0) / (t1 - t0) if t1 > t0 else 1.0
                return c0 + (c1 - c0) * share, n0 + (n1 - n0) * share
        return marks[-1][1], marks[-1][2]

    @property
    def rate(self) -> float:
        return self.readings / self.seconds

    @property
    def per_core(self) -> float:
        return self.readings / self.cpu_seconds


class Clock:
    """Marks the window: ``seen(total)`` after each batch, from the first on."""

    def __init__(self, process: str, expected: int) -> None:
        self.process = process
        self.expected = expected
        self.first: tuple[float, float, int] | None = None
        self.total = 0
        self.start_seconds = 0.0
        self.started_at = 0.0
        self.marks: list[tuple[float, float, int]] = []

    def seen(self, total: int) -> bool:
        """Record ``total`` consumed so far; True once every expected message was."""
        if self.first is None:
            self.first = (time.perf_counter(), time.process_time(), total)
            self.started_at = time.time()
            self.start_seconds = time.time() - psutil.Process().create_time()
        if total != self.total or not self.marks:
            self.marks.append((time.time(), time.process_time() - self.first[1], total))
        self.total = total
        return total >= self.expected

    def report(self) -> None:
        wall, cpu, count = self.first or (0.0, 0.0, 0)
        window = Window(
            self.process,
            self.total - count,
            time.perf_counter() - wall,
            time.process_time() - cpu,
            self.start_seconds,
            self.started_at,
            time.time(),
            tuple(self.marks),
        )
        # A file, not stdout: faust's worker takes stdout over for its logging.
        Path(os.environ["BENCH_RESULT_PATH"]).write_text(json.dumps(asdict(window)))


# --- The targets, each run as `stream_throughput.py --child TARGET` ------------------------


async def bare_consumer(settings: Settings, expected: int, strict: bool = False) -> None:
    """The limit: fetch and JSON-decode every message (``orjson.loads``; ``strict``: the
    strict ``load_json``, about 4x its cost), nothing else (no commits)."""
    topic = Topics(settings.topic_prefix).raw_readings
    consumer = make_consumer(settings, settings.group_id("bare"), [topic])
    clock = Clock("bare consumer", expected)
    decode = load_json if strict else orjson.loads
    await consumer.start()
    try:
        total = 0
        while True:
            polled = await consumer.getmany(timeout_ms=250, max_records=settings.batch_max_records)
            for records in polled.values():
                for r in records:
                    with contextlib.suppress(ValueError, UnicodeDecodeError):
                        decode(r.value)
                total += len(records)
            if total and clock.seen(total):
                break
        clock.report()
    finally:
        await consumer.stop()


def service(name: str, settings: Settings, expected: int) -> None:
    """A real service, stopped once its consumed-messages counter reaches ``expected``."""
    topics = Topics(settings.topic_prefix)
    topic = topics.valid_readings if name == "drift" else topics.raw_readings
    counter = metrics.messages_consumed.labels(name, topic)
    clock = Clock(name, expected)

    async def run(settings: Settings, stop: asyncio.Event) -> None:
        # The clock is told by the counter itself, once per committed batch: a task polling
        # it every 2 ms cost the measured process ~3.5 % of a core for as long as the window
        # lasted (~100 us a wake-up on the loaded machine), which a slow window (ingest
        # waiting for the database) paid per reading several us over.
        count = counter.inc

        def inc(amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
            count(amount, exemplar)
            total = int(counter._value.get())  # noqa: SLF001 (prometheus_client has no public read)
            if not stop.is_set() and clock.seen(total):
                clock.report()
                stop.set()

        counter.inc = inc  # type: ignore[method-assign]
        await load_service(name).run(settings, stop)

    service_main(name, run, settings)  # the services' own entry point


def faust_agent(settings: Settings, expected: int) -> None:
    """The naive way: a faust-streaming agent that validates each message on its own and
    awaits each send (the validator's checks and records, one message per call)."""
    import faust

    from driftline.validation.batch import ReadingValidator

    topics = Topics(settings.topic_prefix)
    seconds = settings.kafka_session_timeout_ms / 1000
    app = faust.App(
        settings.group_id("faust"),
        broker=f"kafka://{settings.kafka_bootstrap_servers}",
        key_serializer="raw",
        value_serializer="raw",
        # faust's defaults (60 s session) cost a 30 s join on Tansu: see docs/kafka.md.
        broker_session_timeout=seconds,
        broker_heartbeat_interval=seconds / 4,
        broker_rebalance_timeout=seconds,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
    )
    raw = app.topic(topics.raw_readings)
    valid = app.topic(f"{settings.topic_prefix}.faust.valid")
    dead = app.topic(f"{settings.topic_prefix}.faust.deadletter")
    validator = ReadingValidator(
        load_profile(settings.profile_path),
        max_message_bytes=settings.max_message_bytes,
        dedup_capacity=settings.dedup_capacity,
    )
    clock = Clock("faust agent", expected)

    @app.agent(raw)
    async def validate(stream):  # type: ignore[no-untyped-def]
        total = 0
        async for event in stream.events():
            m = event.message
            verdict = validator.validate(
                [Message(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp)]
            )
            for _, reading in verdict.valid:
                await valid.send(key=m.key, value=reading.to_bytes())
            for _, letter in verdict.invalid:
                await dead.send(key=m.key, value=letter.to_bytes())
            validator.remember(verdict)
            total += 1
            if clock.seen(total):
                clock.report()
                os._exit(0)  # faust's shutdown takes seconds and is not what is measured

    app.main()


def child(target: str, settings: Settings, expected: int) -> None:
    if target == "faust":
        sys.argv = [sys.argv[0], "worker", "--loglevel", "warn", "--without-web"]
        faust_agent(settings, expected)
    elif target in ("bare", "bare-strict"):
        asyncio.run(bare_consumer(settings, expected, strict=target == "bare-strict"))
    else:
        service(target, settings, expected)


# --- The parent: publish once, run each target as processes, tabulate ----------------------


async def publish(
    settings: Settings, payloads: list[tuple[bytes, bytes]], topic: str | None = None
) -> None:
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings, topics.all())
    producer = make_producer(settings)
    await producer.start()
    try:
        pending = []
        for key, value in payloads:
            pending.append(await producer.send(topic or topics.raw_readings, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


def publish_valid(
    settings: Settings, profile: Profile, payloads: list[tuple[bytes, bytes]], tmp: Path
) -> int:
    """The validator's verdict on ``payloads``, its valid readings published to the valid
    topic (what the drift service consumes), and a reference from their first 5,000 values:
    the number published."""
    import pandas as pd

    from driftline.validation.batch import ReadingValidator

    with console.status("validating for the drift target"):
        verdict = ReadingValidator(profile, dedup_capacity=0).validate(
            [Message("raw", 0, i, k, v) for i, (k, v) in enumerate(payloads)]
        )
        valid = [(r.sensor_id.encode(), r.to_bytes()) for _, r in verdict.valid]
        frame = pd.DataFrame([r.values for _, r in verdict.valid[:5000]])[profile.features]
        frame.to_parquet(tmp / "reference.parquet", index=False)
        topic = Topics(settings.topic_prefix).valid_readings
        asyncio.run(publish(settings, valid, topic))
    console.log(f"published {len(valid):,} valid readings to {topic}")
    return len(valid)


@contextlib.contextmanager
def fresh_database(url: str | None, tmp: Path) -> Iterator[str]:
    """A new, empty raw-store database for one run, dropped afterwards."""
    if url is None or url.startswith("sqlite"):
        yield f"sqlite:///{tmp / f'raw-{uuid.uuid4().hex[:8]}.db'}"
        return
    from sqlalchemy import create_engine, text

    name = f"driftline_bench_{uuid.uuid4().hex[:8]}"
    server = create_engine(url.rsplit("/", 1)[0] if url.count("/") > 2 else url)
    with server.begin() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield f"{url.rsplit('/', 1)[0] if url.count('/') > 2 else url}/{name}"
    finally:
        with server.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        server.dispose()


def run_processes(
    names: list[str],
    settings: Settings,
    expected: int,
    timeout: float,
    log_dir: Path,
    watched: tuple[psutil.Process | None, psutil.Process | None] = (None, None),
) -> Run:
    """Run the targets ``names`` together; their windows, combined, with the machine's CPU
    over them (``watched``: the broker and the database server)."""
    children = []
    with CpuSampler(*watched) as sampler:
        for name in names:
            result = log_dir / f"{name}-{uuid.uuid4().hex[:8]}.json"
            env = {**os.environ, **settings.to_env(), "BENCH_RESULT_PATH": str(result)}
            command = [sys.executable, __file__, "--child", name, "--expected", str(expected)]
            with (log_dir / f"{name}.log").open("ab") as log:
                proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
            children.append((name, proc, result))
        windows = []
        try:
            for name, proc, result in children:
                proc.wait(timeout=timeout)
                if not result.exists():
                    raise SystemExit(f"{name} reported nothing (log: {log_dir / name}.log)")
                found = json.loads(result.read_text())
                found["marks"] = tuple(tuple(m) for m in found["marks"])
                windows.append(Window(**found))
        finally:
            for _, proc, _ in children:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    # The processes run together over their common span (one may start later: ingest
    # migrates its database first); the machine's CPU is taken over that span.
    start = max(w.started_at for w in windows)
    end = min(w.ended_at for w in windows)
    if end - start < 0.5:  # hardly overlapping: the whole of both windows instead
        start, end = min(w.started_at for w in windows), max(w.ended_at for w in windows)
    own_cpu = sum(w.at(end)[0] - w.at(start)[0] for w in windows)
    return combine(windows, (start, end), sampler.share(start, end, own_cpu))


@dataclass(frozen=True)
class Run:
    rate: float  # readings/s
    per_core: float  # readings per CPU second
    cpu_seconds: float
    parts: tuple[Window, ...]
    machine: CpuShare
    together: float  # seconds the processes ran together (the span their rate is taken on)


def combine(windows: list[Window], span: tuple[float, float], machine: CpuShare) -> Run:
    """Processes side by side, in parallel: the slowest, while all run, sets the rate (each
    one's readings over the span they all ran); CPU per reading adds up (whole windows)."""
    start, end = span
    if len(windows) == 1:
        rate = windows[0].rate
    else:
        rate = min((w.at(end)[1] - w.at(start)[1]) / (end - start) for w in windows)
    cpu_per_reading = sum(w.cpu_seconds / w.readings for w in windows)
    cpu = sum(w.cpu_seconds for w in windows)
    return Run(rate, 1 / cpu_per_reading, cpu, tuple(windows), machine, end - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readings", type=int, default=500_000, help="readings published")
    parser.add_argument(
        "--faust-readings",
        type=int,
        default=30_000,
        help="readings the faust agent consumes (it is slow)",
    )
    parser.add_argument("--invalid", type=float, default=0.02, help="share of malformed readings")
    parser.add_argument("--repeats", type=int, default=3, help="runs per target (medians shown)")
    parser.add_argument(
        "--database-url",
        default=MARIADB,
        help=f"server URL of the raw store; a new database per run (default {MARIADB}); "
        "'sqlite' for a new SQLite file per run",
    )
    parser.add_argument(
        "--batch-max-records", type=int, default=None, help="services' batch size (default: theirs)"
    )
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=None,
        help="consumer session timeout of every target (default: 2000 on the embedded broker, "
        "10000 on a real Kafka; faust's own default, 60000, makes its join take 30 s on Tansu)",
    )
    parser.add_argument(
        "--ingest-path",
        default="new",
        help="how ingest writes the raw store, comma-separated, the services run once with "
        "each: new (batches the database loads natively; two batches in flight in ingest and "
        "in the validator), serial (the same, one batch at a time each), old (row-by-row "
        "INSERT, the first baseline); both = new,old",
    )
    parser.add_argument("--only", default="", help="comma-separated targets: " + ",".join(TARGETS))
    parser.add_argument(
        "--quick", action="store_true", help="100,000 readings (faust: 10,000), 1 run"
    )
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Settings(), args.expected)  # type: ignore[call-arg]
        return
    if args.quick:
        args.readings, args.faust_readings, args.repeats = 100_000, 10_000, 1
    targets = [t for t in TARGETS if not args.only or t in args.only.split(",")]

    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        servers = external or stack.enter_context(EmbeddedBroker()).bootstrap_servers
        base = {
            "kafka_bootstrap_servers": servers,
            "data_dir": tmp,
            "topic_prefix": f"bench-{uuid.uuid4().hex[:8]}",
            "kafka_session_timeout_ms": args.session_timeout_ms
            or (10_000 if external else SESSION_TIMEOUT_MS),
            "log_level": "WARNING",
        }
        if args.batch_max_records:
            base["batch_max_records"] = args.batch_max_records
        settings = Settings(**base)  # type: ignore[arg-type]
        profile = load_profile(settings.profile_path)
        logs = Path(tempfile.gettempdir()) / f"driftline-{base['topic_prefix']}"
        logs.mkdir()
        console.log(f"logs of the targets: {logs}")
        with console.status(f"publishing {args.readings:,} readings"):
            payloads = reading_payloads(args.readings, profile, invalid=args.invalid)
            asyncio.run(publish(settings, payloads))
        console.log(
            f"published {args.readings:,} readings to {Topics(base['topic_prefix']).raw_readings}"
        )
        database = None if args.database_url == "sqlite" else find_database(args.database_url)
        watched = (None if external else find_broker(), database)
        valid_count = 0
        if "drift" in targets:
            valid_count = publish_valid(settings, profile, payloads, tmp)

        targets = ingest_paths(targets, args.ingest_path)
        results: dict[str, list[Run]] = {t: [] for t in targets}
        for repeat in range(args.repeats):
            for target in targets:
                group = f"{base['topic_prefix']}-{target}-{repeat}"
                console.log(f"{target}: run {repeat + 1}/{args.repeats}")
                run_settings = settings.model_copy(update={"consumer_group_prefix": group})
                if target in SERVICES:
                    ingest = {
                        "raw_store_bulk_load": target != "services-old",
                        **(SERIAL if target == "services-serial" else {}),
                    }
                    run_settings = run_settings.model_copy(update=ingest)
                    with fresh_database(
                        None if args.database_url == "sqlite" else args.database_url, tmp
                    ) as url:
                        secret = SecretStr(url)
                        run_settings = run_settings.model_copy(update={"database_url": secret})
                        run = run_processes(
                            ["ingest", "validator"],
                            run_settings,
                            args.readings,
                            1800,
                            logs,
                            watched,
                        )
                elif target == "drift":
                    run_settings = run_settings.model_copy(
                        update={"reference_path": tmp / "reference.parquet"}
                    )
                    run = run_processes(["drift"], run_settings, valid_count, 1800, logs, watched)
                else:
                    expected = args.faust_readings if target == "faust" else args.readings
                    run = run_processes([target], run_settings, expected, 1800, logs, watched)
                results[target].append(run)

    print_table(results, args)


@dataclass(frozen=True)
class Row:
    target: str
    readings: float
    rate: float  # readings/s
    cpu_seconds: float
    per_core: float  # readings per CPU second
    start_seconds: float  # process start to first batch (not measured)


def summarize(label: str, runs: list[Run], part: int | None = None) -> Row:
    """Medians over runs, of the whole target or of one of its processes."""

    def med(values: Iterator[float]) -> float:
        return statistics.median(list(values))

    if part is not None:
        windows = [r.parts[part] for r in runs]
        return Row(
            label,
            med(w.readings for w in windows),
            med(w.rate for w in windows),
            med(w.cpu_seconds for w in windows),
            med(w.per_core for w in windows),
            med(w.start_seconds for w in windows),
        )
    return Row(
        label,
        med(min(w.readings for w in r.parts) for r in runs),
        med(r.rate for r in runs),
        med(r.cpu_seconds for r in runs),
        med(r.per_core for r in runs),
        med(max(w.start_seconds for w in r.parts) for r in runs),
    )


LABELS = {
    "bare": "bare aiokafka consumer (limit)",
    "bare-strict": "bare consumer, strict load_json",
    "services": "ingest + validator (services)",
    "drift": "drift service (valid topic, with I/O)",
    "services-serial": "the same, one batch at a time each",
    "services-old": "ingest (old INSERT path) + validator",
    "faust": "faust agent, per message",
}
SERVICES = ("services", "services-serial", "services-old")
SERIAL = {"ingest_batches_in_flight": 1, "validator_batches_in_flight": 1}


def ingest_paths(targets: list[str], path: str) -> list[str]:
    """The services target once per ingest path asked for (``SERVICES``)."""
    if "services" not in targets:
        return targets
    names = {"new": "services", "serial": "services-serial", "old": "services-old"}
    asked = path.replace("both", "new,old").split(",")
    unknown = [p for p in asked if p not in names]
    if unknown:
        raise SystemExit(f"--ingest-path: unknown {', '.join(unknown)} (new, serial, old, both)")
    at = targets.index("services")
    return targets[:at] + [names[p] for p in asked] + targets[at + 1 :]


def print_table(results: dict[str, list[Run]], args: argparse.Namespace) -> None:
    rows = []
    for target, runs in results.items():
        rows.append(summarize(LABELS[target], runs))
        if target in SERVICES:
            for i, window in enumerate(runs[0].parts):
                rows.append(summarize(f"  {window.process} alone", runs, i))
    bare = next((r.rate for r in rows if r.target == LABELS["bare"]), None)
    bare_core = next((r.per_core for r in rows if r.target == LABELS["bare"]), None)
    db = "SQLite" if args.database_url == "sqlite" else "MariaDB"
    table = Table(
        title=f"Stream throughput, {args.readings:,} readings ({args.invalid:.0%} invalid), raw "
        f"store on {db}, batches of {args.batch_max_records or Settings().batch_max_records:,} "
        f"(medians of {args.repeats} runs)"
    )
    columns = (
        "target",
        "readings",
        "readings/s",
        "x bare",
        "CPU s",
        "per core",
        "core x bare",
        "start s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "target" else "right")
    for r in rows:
        table.add_row(
            r.target,
            f"{r.readings:,.0f}",
            f"{r.rate:,.0f}",
            f"{r.rate / bare:.2f}" if bare else "-",
            f"{r.cpu_seconds:.2f}",
            f"{r.per_core:,.0f}",
            f"{r.per_core / bare_core:.2f}" if bare_core else "-",
            f"{r.start_seconds:.1f}",
        )
    Console(width=120).print(table)
    Console(width=120).print(machine_table(results))
    from importlib.metadata import version

    names = ("aiokafka", "faust-streaming", "SQLAlchemy", "PyMySQL")
    print(f"{versions()}, {', '.join(f'{n} {version(n)}' for n in names)}")
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows]}))


def _median(values: Iterator[float]) -> float:
    return statistics.median(list(values))


def machine_table(results: dict[str, list[Run]]) -> Table:
    """Where the cores went during each target's window: CPU seconds by whom (medians)."""
    med = _median
    table = Table(
        title="The machine during each window: CPU s (us per reading), medians; capacity = "
        "cores x window"
    )
    columns = ("target", "window s", "capacity", "targets", "broker", "database", "others")
    for column in (*columns, "idle", "load avg"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for target, runs in results.items():
        readings = med(min(w.readings for w in r.parts) for r in runs)

        def cell(values: Iterator[float], readings: float = readings) -> str:
            seconds = med(values)
            return f"{seconds:.2f} ({seconds / readings * 1e6:.1f})"

        table.add_row(
            LABELS[target],
            f"{med(r.machine.seconds for r in runs):.2f}",
            f"{med(r.machine.capacity for r in runs):.2f}",
            cell(r.machine.targets for r in runs),
            cell(r.machine.broker for r in runs),
            cell(r.machine.database for r in runs),
            cell(r.machine.others for r in runs),
            f"{med(r.machine.idle for r in runs):.2f}",
            f"{med(r.machine.load_average for r in runs):.1f}",
        )
    return table


if __name__ == "__main__":
    main()
