"""What the retrain-trigger keeps in the database: one trigger_decisions row per decided event,
and the run ledger it restores its policy from after a restart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, select

from driftline.core.recent_ids import RecentIds
from driftline.core.records import DriftEvent, LabelledPerformance, RetrainRequest
from driftline.core.settings import Settings
from driftline.labels.trigger_rule import LabelledOutcome, record_decision
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc, trigger_decisions
from driftline.trigger.ledger import FINISHED, RunLedger
from driftline.trigger.policy import Decision, PolicyConfig, RetrainPolicy

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
                }
            ],
        )

    def record_labelled(self, event: LabelledPerformance, outcome: LabelledOutcome) -> None:
        record_decision(self.engine, event, outcome)
