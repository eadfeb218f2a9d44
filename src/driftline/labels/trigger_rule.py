"""The labelled-performance retraining rule as the trigger applies it, beside data drift.

A LabelledPerformance event is decided once (a retried batch reuses the decision, so the policy
is not consulted twice): the labelled F1 rule, then the cooldown and in-flight run the drift
rule shares. Each decision is a row of ``trigger_decisions`` (``sensor_id`` ``labelled:<model
version>``, ``drift_share`` holding the labelled F1) with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from driftline.core.records import LabelledPerformance, RetrainRequest
from driftline.core.settings import Settings
from driftline.labels.performance import LabelledRule, LabelledScore, labelled_decision
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc
from driftline.store.tables import trigger_decisions
from driftline.trigger.policy import Decision, RetrainPolicy


def rule_from(settings: Settings) -> LabelledRule:
    return LabelledRule(
        f1_threshold=settings.trigger_labelled_f1_threshold,
        min_readings=settings.trigger_labelled_min_readings,
    )


def decide(
    event: LabelledPerformance, rule: LabelledRule, policy: RetrainPolicy, now: datetime
) -> Decision:
    score = LabelledScore(
        event.model_version,
        event.readings,
        event.true_positives,
        event.false_positives,
        event.false_negatives,
    )
    verdict = labelled_decision(score, rule)
    if not verdict.fired:
        return verdict
    blockers = policy.blockers(now)
    if blockers:
        return Decision(False, f"{verdict.reason}; {'; '.join(blockers)}")
    policy.fired(now)
    return Decision(
        True,
        f"{verdict.reason}: retraining",
        sensors=list(event.sensors),
        data_start=event.data_start,
        data_end=event.data_end,
    )


@dataclass
class LabelledOutcome:
    decided_at: datetime
    decision: Decision
    request: RetrainRequest | None
    published: bool = False
    launched: bool = False


class LabelledTrigger:
    """Decisions on labelled performance, each made once per event."""

    def __init__(self, rule: LabelledRule, policy: RetrainPolicy) -> None:
        self.rule = rule
        self.policy = policy
        self._pending: dict[str, LabelledOutcome] = {}

    def outcome(self, event: LabelledPerformance, now: datetime) -> LabelledOutcome:
        found = self._pending.get(event.event_id)
        if found is None:
            decision = decide(event, self.rule, self.policy, now)
            request = None
            if decision.fired and decision.data_start and decision.data_end:
                request = RetrainRequest(
                    reason=decision.reason,
                    sensors=decision.sensors,
                    drift_event_ids=[],
                    data_start=decision.data_start,
                    data_end=decision.data_end,
                )
            found = self._pending[event.event_id] = LabelledOutcome(now, decision, request)
        return found

    def done(self, event_id: str) -> None:
        self._pending.pop(event_id, None)


def record_decision(engine: Engine, event: LabelledPerformance, outcome: LabelledOutcome) -> None:
    insert_ignoring_duplicates(
        engine,
        trigger_decisions,
        [
            {
                "decided_at": naive_utc(outcome.decided_at),
                "drift_event_id": event.event_id,
                "sensor_id": f"labelled:{event.model_version}"[:128],
                "drift_share": event.f1,
                "fired": outcome.decision.fired,
                "reason": outcome.decision.reason,
                "request_id": outcome.request.request_id if outcome.request else None,
            }
        ],
    )
