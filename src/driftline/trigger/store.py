"""What the retrain-trigger keeps in the database: one trigger_decisions row per decided event,
and the run ledger it restores its policy from after a restart."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select, union_all

from driftline.core.recent_ids import RecentIds
from driftline.core.records import DriftEvent, LabelledPerformance, RetrainRequest
from driftline.core.settings import Settings
from driftline.labels.trigger_rule import LabelledOutcome, record_decision
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc
from driftline.store.tables import trigger_decisions
from driftline.trigger.ledger import FINISHED, RunLedger
from driftline.trigger.machine import Pending
from driftline.trigger.policy import PolicyConfig, RetrainPolicy, StreakWindow
from driftline.trigger.relaunch import relaunch_id

DECIDED_MEMORY = 200_000  # event ids remembered; a redelivery is never that far back
# Sensors whose streak windows one statement takes (SQLite allows 500 SELECTs in a UNION).
SENSORS_PER_QUERY = 400


def policy_config(settings: Settings) -> PolicyConfig:
    """Each field from the setting of its name with ``trigger_`` before it."""
    return PolicyConfig(
        **{f.name: getattr(settings, f"trigger_{f.name}") for f in fields(PolicyConfig)}
    )


def policy_from(config: PolicyConfig, ledger: RunLedger) -> RetrainPolicy:
    """The policy as the newest run in the ledger leaves it: cooling down from its firing, and
    in flight unless it finished."""
    latest = ledger.latest()
    if latest is None:
        return RetrainPolicy(config)
    fired_at, status = latest
    return RetrainPolicy(
        config,
        last_fired_at=fired_at,
        in_flight_since=None if status in FINISHED else fired_at,
    )


def streak_lengths(conn: Connection) -> list[tuple[str, int]]:
    """(sensor, n) of each sensor whose newest decision says its streak is n > 0, unless a
    later firing consumed it (two queries)."""
    t = trigger_decisions
    newest = (
        select(t.c.sensor_id, func.max(t.c.id).label("id"))
        .where(t.c.streak.is_not(None))
        .group_by(t.c.sensor_id)
        .subquery()
    )
    heads = conn.execute(
        select(t.c.sensor_id, t.c.id, t.c.streak)
        .join(newest, t.c.id == newest.c.id)
        .where(t.c.streak > 0)
    ).all()
    if not heads:
        return []
    consumed: dict[str, int] = {}  # sensor: id of the newest firing that consumed it
    firings = conn.execute(
        select(t.c.id, t.c.fired_sensors)
        .where(t.c.fired_sensors.is_not(None))
        .where(t.c.id > min(h.id for h in heads))
    )
    for fired_id, sensors in firings:
        for sensor in json.loads(sensors):
            consumed[sensor] = max(consumed.get(sensor, 0), fired_id)
    return [(s, n) for s, head, n in heads if consumed.get(s, 0) <= head]


class DecisionStore:
    """The trigger_decisions table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def decided_event_ids(self, limit: int = DECIDED_MEMORY) -> RecentIds:
        """Events already decided (before a restart), bounded, oldest forgotten first: a
        redelivery must not count twice."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(trigger_decisions.c.drift_event_id)
                .order_by(trigger_decisions.c.id.desc())
                .limit(limit)
            )
            newest_first = list(rows.scalars())
        seen = RecentIds(limit)
        for event_id in reversed(newest_first):
            seen.add(event_id)
        return seen

    def record_drift(self, event: DriftEvent, decided: Pending) -> None:
        decision, request = decided.decision, decided.request
        insert_ignoring_duplicates(
            self.engine,
            trigger_decisions,
            [
                {
                    "decided_at": naive_utc(decided.decided_at),
                    "drift_event_id": event.event_id,
                    "sensor_id": event.sensor_id,
                    "drift_share": event.drift_share,
                    "fired": decision.fired,
                    "reason": decision.reason,
                    "request_id": request.request_id if request else None,
                    "streak": decision.streak,
                    "window_start": naive_utc(event.window_start),
                    "window_end": naive_utc(event.window_end),
                    "fired_sensors": json.dumps(decision.sensors) if decision.fired else None,
                }
            ],
        )

    def streaks(self) -> dict[str, list[StreakWindow]]:
        """The sensors' streaks as the recorded decisions leave them: each sensor's n newest
        decisions, n as ``streak_lengths`` says. Three queries for up to ``SENSORS_PER_QUERY``
        sensors with a streak (one more per as many more): the heads, the firings since the
        oldest, and the windows, each sensor's taken by the index."""
        t = trigger_decisions
        columns = (t.c.sensor_id, t.c.id, t.c.drift_event_id, t.c.window_start, t.c.window_end)
        windows: list[Row[Any]] = []
        with self.engine.connect() as conn:
            lengths = streak_lengths(conn)
            for at in range(0, len(lengths), SENSORS_PER_QUERY):
                newest_of_each = [
                    select(*columns)
                    .where(t.c.sensor_id == sensor)
                    .where(t.c.streak.is_not(None))
                    .order_by(t.c.id.desc())
                    .limit(n)
                    .subquery()
                    .select()
                    for sensor, n in lengths[at : at + SENSORS_PER_QUERY]
                ]
                windows += conn.execute(union_all(*newest_of_each)).all()
        streaks: dict[str, list[StreakWindow]] = {}
        for w in sorted(windows, key=lambda w: (w.sensor_id, w.id)):
            streaks.setdefault(w.sensor_id, []).append(
                StreakWindow(
                    w.drift_event_id,
                    w.window_start.replace(tzinfo=UTC),
                    w.window_end.replace(tzinfo=UTC),
                )
            )
        return streaks

    def record_labelled(self, event: LabelledPerformance, outcome: LabelledOutcome) -> None:
        record_decision(self.engine, event, outcome)

    def record_held_relaunch(
        self, failed: RetrainRequest, attempt: int, reason: str, decided_at: datetime
    ) -> None:
        """A row keyed by the id the relaunch would have had: a second restart that decides
        the same adds none."""
        insert_ignoring_duplicates(
            self.engine,
            trigger_decisions,
            [
                {
                    "decided_at": naive_utc(decided_at),
                    "drift_event_id": relaunch_id(failed.request_id, attempt),
                    "sensor_id": f"relaunch:{failed.request_id}",
                    "drift_share": 0.0,
                    "fired": False,
                    "reason": reason,
                    "request_id": None,
                }
            ],
        )
