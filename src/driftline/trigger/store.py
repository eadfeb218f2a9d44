"""What the retrain-trigger keeps in the database: one trigger_decisions row per decided event,
and the run ledger it restores its policy from after a restart."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from driftline.core.recent_ids import RecentIds
from driftline.core.records import DriftEvent, LabelledPerformance, RetrainRequest
from driftline.core.settings import Settings
from driftline.labels.trigger_rule import LabelledOutcome, record_decision
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc, trigger_decisions
from driftline.trigger.ledger import FINISHED, RunLedger
from driftline.trigger.machine import Pending
from driftline.trigger.policy import PolicyConfig, RetrainPolicy, StreakWindow
from driftline.trigger.relaunch import relaunch_id

DECIDED_MEMORY = 200_000  # event ids remembered; a redelivery is never that far back


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
        """The sensors' streaks as the recorded decisions leave them: a sensor's newest
        decision says how long its streak is (n), unless a later firing consumed it; its n
        newest decisions are the streak's windows. Two queries, whatever the sensor count:
        the heads with their windows (numbered per sensor, newest first), and the firings
        since the oldest head."""
        t = trigger_decisions
        newest = (
            select(t.c.sensor_id, func.max(t.c.id).label("head_id"))
            .where(t.c.streak.is_not(None))
            .group_by(t.c.sensor_id)
            .subquery()
        )
        heads = (
            select(t.c.sensor_id, newest.c.head_id, t.c.streak.label("length"))
            .join(newest, t.c.id == newest.c.head_id)
            .where(t.c.streak > 0)
            .subquery()
        )
        numbered = (
            select(
                t.c.sensor_id,
                t.c.id,
                t.c.drift_event_id,
                t.c.window_start,
                t.c.window_end,
                func.row_number()
                .over(partition_by=t.c.sensor_id, order_by=t.c.id.desc())
                .label("back"),
            )
            .where(t.c.streak.is_not(None))
            .where(t.c.sensor_id.in_(select(heads.c.sensor_id)))
            .subquery()
        )
        with self.engine.connect() as conn:
            windows = conn.execute(
                select(numbered, heads.c.head_id)
                .join(heads, numbered.c.sensor_id == heads.c.sensor_id)
                .where(numbered.c.back <= heads.c.length)
                .order_by(numbered.c.sensor_id, numbered.c.id)
            ).all()
            if not windows:
                return {}
            firings = conn.execute(
                select(t.c.id, t.c.fired_sensors)
                .where(t.c.fired_sensors.is_not(None))
                .where(t.c.id > min(w.head_id for w in windows))
            ).all()
        consumed: dict[str, int] = {}  # sensor: id of the newest firing that consumed it
        for fired_id, sensors in firings:
            for sensor in json.loads(sensors):
                consumed[sensor] = max(consumed.get(sensor, 0), fired_id)
        streaks: dict[str, list[StreakWindow]] = {}
        for w in windows:
            if consumed.get(w.sensor_id, 0) > w.head_id:
                continue
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
