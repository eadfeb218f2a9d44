"""Watches the platform's topics and tables for the live view and the demo's summary.

It reads with a group-less consumer (nothing to join, nothing committed) and polls the
database; it changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.store.raw_store import RawStore
from driftline.store.tables import raw_readings, retrain_runs, trigger_decisions
from driftline.streaming.kafka import client_options

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# KFP's local runner: "07:04:02.205 - INFO - Executing task 'train-step'" ...
# "07:04:28.599 - INFO - Task 'train-step' finished with status SUCCESS"
_STEP = re.compile(
    r"(\d\d):(\d\d):(\d\d(?:\.\d+)?) - \w+ - "
    r"(?:Executing task '?([\w-]+)'?|Task '?([\w-]+)'? finished with status (\w+))"
)


@dataclass
class PlatformState:
    valid: int = 0
    dead_letters: int = 0
    dead_by_check: Counter[str] = field(default_factory=Counter)
    drift_windows: int = 0
    drifted_windows: int = 0
    drift_share: dict[str, float] = field(default_factory=dict)
    first_drifted_at: datetime | None = None  # emitted_at of the first drifted window
    retrain_requests: list[dict[str, object]] = field(default_factory=list)
    stored: int = 0
    decisions_held: int = 0
    decisions_fired: int = 0
    last_reason: str = ""
    promotions: list[dict[str, object]] = field(default_factory=list)
    windows: list[tuple[datetime, bool]] = field(default_factory=list)  # (start, drifted)
    pipeline_steps: dict[str, str] = field(default_factory=dict)  # step -> status
    step_seconds: dict[str, float] = field(default_factory=dict)  # finished step -> duration
    step_started: dict[str, float] = field(default_factory=dict)  # running step -> monotonic
    run_status: dict[str, str] = field(default_factory=dict)  # retrain request id -> status
    serving_version: str | None = None
    serving_first_seen: dict[str, datetime] = field(default_factory=dict)  # version -> when
    _valid_times: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=20))

    def drifted_since(self, when: datetime) -> tuple[int, int]:
        """(drifted, all) windows that started at or after ``when``."""
        after = [drifted for start, drifted in self.windows if start >= when]
        return sum(after), len(after)

    def valid_rate(self) -> float:
        if len(self._valid_times) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._valid_times[0], self._valid_times[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class PlatformMonitor:
    def __init__(self, settings: Settings, serving_url: str | None = None) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.state = PlatformState()
        self.store = RawStore.from_url(settings.resolved_database_url)
        self.serving_url = serving_url

    async def run(self, stop: asyncio.Event) -> None:
        watchers = [self._follow_topics(stop), self._poll_database(stop), self._read_pipeline(stop)]
        if self.serving_url:
            watchers.append(self._probe_serving(stop))
        await asyncio.gather(*watchers)

    async def _probe_serving(self, stop: asyncio.Event) -> None:
        """Ask serving for one prediction a second: the model version it answers with."""
        import httpx

        from driftline.simulate.signals import PUMP_STATS

        values = {name: mean for name, (mean, _, _) in PUMP_STATS.items()}
        async with httpx.AsyncClient(base_url=str(self.serving_url), timeout=5) as client:
            seq = 0
            while not stop.is_set():
                seq += 1
                reading = {
                    "sensor_id": "pump-probe",
                    "ts": datetime.now(UTC).isoformat(),
                    "seq": seq,
                    "values": values,
                }
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                    response = await client.post("/predict", json=reading)
                    if response.status_code == 200:
                        version = str(response.json()["model_version"])
                        self.state.serving_version = version
                        self.state.serving_first_seen.setdefault(version, datetime.now(UTC))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def _read_pipeline(self, stop: asyncio.Event) -> None:
        """Step progress from the logs of KFP's local runner (``pipeline-*.log``), reading
        only what each log gained since the last look."""
        logs = self.settings.data_dir / "logs"
        read: dict[Path, int] = {}  # log -> bytes parsed (whole lines only)
        steps = self.state.pipeline_steps
        begun: dict[str, float] = {}  # step -> its start, seconds of the day (the log's clock)
        while not stop.is_set():
            for path in sorted(logs.glob("pipeline-*.log")):
                with contextlib.suppress(OSError), path.open("rb") as f:
                    f.seek(read.get(path, 0))
                    new = f.read()
                    whole = new[: new.rfind(b"\n") + 1]
                    read[path] = read.get(path, 0) + len(whole)
                    text = _ANSI.sub("", whole.decode(errors="replace"))
                    for match in _STEP.finditer(text):
                        h, m, sec, started, finished, status = match.groups()
                        clock = int(h) * 3600 + int(m) * 60 + float(sec)
                        if started:
                            steps[started] = "running"
                            begun[started] = clock
                            self.state.step_started[started] = time.monotonic()
                        else:
                            steps[finished] = status.lower()
                            if finished in begun:
                                took = (clock - begun[finished]) % 86400
                                self.state.step_seconds[finished] = round(took, 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def _follow_topics(self, stop: asyncio.Event) -> None:
        t = self.topics
        watched = [
            t.valid_readings,
            t.dead_letter,
            t.drift_events,
            t.retrain_requests,
            t.model_promotions,
        ]
        consumer = AIOKafkaConsumer(**client_options(self.settings), enable_auto_commit=False)
        await consumer.start()
        try:
            tps = []
            for topic in watched:
                for p in consumer.partitions_for_topic(topic) or {0}:
                    tps.append(TopicPartition(topic, p))
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not stop.is_set():
                polled = await consumer.getmany(timeout_ms=500, max_records=5000)
                for tp, records in polled.items():
                    self._count(tp.topic, [r.value for r in records])
                self.state._valid_times.append((time.monotonic(), self.state.valid))
        finally:
            await consumer.stop()

    def _count(self, topic: str, values: list[bytes | None]) -> None:
        s, t = self.state, self.topics
        if topic == t.valid_readings:
            s.valid += len(values)
        elif topic == t.dead_letter:
            s.dead_letters += len(values)
            for v in values:
                for reason in orjson.loads(v or b"{}").get("reasons", []):
                    s.dead_by_check[reason.get("check", "?")] += 1
        elif topic == t.drift_events:
            for v in values:
                event = orjson.loads(v or b"{}")
                s.drift_windows += 1
                s.drift_share[event["sensor_id"]] = event["drift_share"]
                start = datetime.fromisoformat(event["window_start"])
                s.windows.append((start, bool(event.get("drifted"))))
                if event.get("drifted"):
                    s.drifted_windows += 1
                    s.first_drifted_at = s.first_drifted_at or datetime.fromisoformat(
                        event["emitted_at"]
                    )
        elif topic == t.retrain_requests:
            s.retrain_requests += [orjson.loads(v or b"{}") for v in values]
        elif topic == t.model_promotions:
            s.promotions += [orjson.loads(v or b"{}") for v in values]

    async def _poll_database(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # The tables appear only once ingest and the trigger have started.
            with contextlib.suppress(SQLAlchemyError):
                await asyncio.to_thread(self._read_tables)
            await asyncio.sleep(1.0)

    def _read_tables(self) -> None:
        with self.store.engine.connect() as conn:
            self.state.stored = conn.execute(
                select(func.count()).select_from(raw_readings)
            ).scalar_one()
            rows = conn.execute(
                select(trigger_decisions.c.fired, func.count()).group_by(trigger_decisions.c.fired)
            ).all()
            counts = {bool(fired): n for fired, n in rows}
            self.state.decisions_fired = counts.get(True, 0)
            self.state.decisions_held = counts.get(False, 0)
            last = conn.execute(
                select(trigger_decisions.c.reason).order_by(trigger_decisions.c.id.desc()).limit(1)
            ).scalar()
            self.state.last_reason = last or ""
            runs = conn.execute(select(retrain_runs.c.request_id, retrain_runs.c.status)).all()
            self.state.run_status = {str(r): str(status) for r, status in runs}
