"""A failed run's relaunch, made the same way before and after a restart.

A relaunch's request id is derived from the failed run's id and the relaunch's number, so a
trigger restarted while a relaunch was pending (its failure recorded, the relaunch not yet
launched) resumes it under the same request id: whatever saw it published once sees the same
request again, and the ledger records it once. ``RelaunchRule``: how many relaunches, the wait
before each, and how old a failure a restart still relaunches.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from tenacity import RetryCallState, wait_exponential

from driftline.core.records import RetrainRequest

_NAMESPACE = uuid.UUID("5b0f4c1e-7d2a-4f6e-9a51-3c8e2d7b9f10")


@dataclass(frozen=True)
class RelaunchRule:
    attempts: int
    backoff_seconds: float
    max_age_seconds: float = float("inf")  # a failure older at a restart is not relaunched
    _wait: wait_exponential = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_wait", wait_exponential(multiplier=self.backoff_seconds))

    def delay(self, attempt: int) -> float:
        """Wait before relaunch number ``attempt + 1``: backoff, then doubling."""
        state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
        state.attempt_number = attempt + 1
        return float(self._wait(state))


@dataclass
class Relaunch:
    failed: RetrainRequest  # the run that failed
    attempt: int  # the relaunch's number, 1 for the first
    due: float  # monotonic time
    request: RetrainRequest | None = None  # made when due, once
    published: bool = False


def relaunch_id(failed_request_id: str, attempt: int) -> str:
    return uuid.uuid5(_NAMESPACE, f"{failed_request_id}/relaunch/{attempt}").hex


def relaunch_request(failed: RetrainRequest, attempt: int, now: datetime) -> RetrainRequest:
    return failed.model_copy(
        update={
            "request_id": relaunch_id(failed.request_id, attempt),
            "requested_at": now,
            "reason": f"relaunch {attempt} of {failed.request_id}: {failed.reason}",
        }
    )
