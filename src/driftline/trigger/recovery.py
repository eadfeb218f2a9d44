"""The retrain-trigger's restart recovery, all from the database: the launcher writes the
outcome of runs that ended while no trigger watched them, the policy's cooldown and in-flight
state come from the newest run in the ledger, its consecutive-window streaks from the recorded
decisions, events already decided are skipped, a run still going is followed again (its
outcome, not the deadline, ends the in-flight state; it is relaunched if it fails), and a
relaunch pending when the trigger stopped is resumed under the same request id."""

from __future__ import annotations

from driftline.core.records import RetrainRequest
from driftline.core.settings import Settings
from driftline.labels.trigger_rule import LabelledTrigger, rule_from
from driftline.trigger.launcher import PipelineLauncher
from driftline.trigger.ledger import RunLedger
from driftline.trigger.machine import Publish, Trigger
from driftline.trigger.relaunch import RelaunchRule
from driftline.trigger.store import DecisionStore, policy_config, policy_from


async def _not_wired(request: RetrainRequest) -> None:
    raise RuntimeError("the trigger's publish is set by the service that runs it")


def restore(
    settings: Settings,
    ledger: RunLedger,
    launcher: PipelineLauncher,
    publish: Publish = _not_wired,
) -> Trigger:
    """A trigger as the database leaves it (blocking: run it in a thread, retried)."""
    going = launcher.reconcile()
    policy = policy_from(policy_config(settings), ledger)
    decisions = DecisionStore(ledger.engine)
    trigger = Trigger(
        policy,
        LabelledTrigger(rule_from(settings), policy),
        launcher,
        ledger,
        decisions,
        publish,
        RelaunchRule(
            settings.trigger_retry_attempts,
            settings.trigger_retry_backoff_seconds,
            settings.trigger_retry_max_age_seconds,
        ),
        decisions.decided_event_ids(),
    )
    policy.restore_streaks(decisions.streaks())
    trigger.resume(going, ledger.run, None if going else ledger.newest_failed())
    return trigger
