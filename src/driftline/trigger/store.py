"""What the retrain-trigger keeps in the database: one trigger_decisions row per decided event,
and the run ledger it restores its policy from after a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from driftline.core.recent_ids import RecentIds
from driftline.core.records import DriftEvent, LabelledPerformance, RetrainRequest
from driftline.core.settings import Settings
from driftline.labels.trigger_rule import LabelledOutcome, record_decision
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc, trigger_decisions
from driftline.trigger.ledger import FINISHED, RunLedger
from driftline.trigger.policy import Decision, PolicyConfig, RetrainPolicy, StreakWindow

DECIDED_MEMORY = 200_000  # event ids remembered; a redelivery is never that far back


def policy_config(settings: Settings) -> PolicyConfig:
    return PolicyConfig(
        share_threshold=settings.trigger_share_threshold,
        consecutive_windows=settings.trigger_consecutive_windows,
        min_sensors=settings.trigger_min_sensors,
        cooldown_seconds=settings.trigger_cooldown_seconds,
        max_run_seconds=settings.trigger_max_run_seconds,
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

    def record_drift(
        self,
        event: DriftEvent,
        decision: Decision,
        decided_at: datetime,
        request: RetrainRequest | None,
    ) -> None:
        insert_ignoring_duplicates(
            self.engine,
            trigger_decisions,
            [
                {
                    "decided_at": naive_utc(decided_at),
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
        decision says how long its streak is, unless a later firing consumed it."""
        t = trigger_decisions
        with self.engine.connect() as conn:
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
                return {}
            consumed: dict[str, int] = {}  # sensor: id of the newest firing that consumed it
            firings = conn.execute(
                select(t.c.id, t.c.fired_sensors)
                .where(t.c.fired_sensors.is_not(None))
                .where(t.c.id > min(h.id for h in heads))
            )
            for fired_id, sensors in firings:
                for sensor in json.loads(sensors):
                    consumed[sensor] = max(consumed.get(sensor, 0), fired_id)
            streaks = {}
            for sensor, head_id, length in heads:
                if consumed.get(sensor, 0) > head_id:
                    continue
                rows = conn.execute(
                    select(t.c.drift_event_id, t.c.window_start, t.c.window_end)
                    .where(t.c.sensor_id == sensor)
                    .where(t.c.streak.is_not(None))
                    .order_by(t.c.id.desc())
                    .limit(length)
                ).all()
                streaks[sensor] = [
                    StreakWindow(r[0], r[1].replace(tzinfo=UTC), r[2].replace(tzinfo=UTC))
                    for r in reversed(rows)
                ]
        return streaks

    def record_labelled(self, event: LabelledPerformance, outcome: LabelledOutcome) -> None:
        record_decision(self.engine, event, outcome)
