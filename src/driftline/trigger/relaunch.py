"""A failed run's relaunch, made the same way before and after a restart.

A relaunch's request id is derived from the failed run's id and the relaunch's number, so a
trigger restarted while a relaunch was pending (its failure recorded, the relaunch not yet
launched) resumes it under the same request id: whatever saw it published once sees the same
request again, and the ledger records it once.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from driftline.core.records import RetrainRequest

_NAMESPACE = uuid.UUID("5b0f4c1e-7d2a-4f6e-9a51-3c8e2d7b9f10")
_REASON = re.compile(r"relaunch (\d+) of ")


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


def attempt_of(request: RetrainRequest) -> int:
    """The relaunch number of ``request``: 0 for a first launch."""
    found = _REASON.match(request.reason)
    return int(found.group(1)) if found else 0
