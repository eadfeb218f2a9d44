"""Pipeline launchers: what the retrain-trigger calls when it fires.

``RecordingLauncher`` only records the request (there is no pipeline to run yet); the KFP
local runner and the KFP cluster client implement the same protocol.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Protocol

from sqlalchemy import Engine, select, update

from driftline.raw_store import insert_ignoring_duplicates, naive_utc, retrain_runs
from driftline.records import RetrainRequest

RunStatus = Literal["running", "succeeded", "failed", "recorded"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "recorded"})


class PipelineLauncher(Protocol):
    name: str

    def launch(self, request: RetrainRequest) -> str:
        """Start a retraining for ``request``; returns the run's id."""

    def status(self, run_id: str) -> RunStatus:
        """Where the run stands now."""


class RunLedger:
    """The retrain_runs table: every launched run, its status and when it finished."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, request: RetrainRequest, launcher: str, status: RunStatus) -> None:
        insert_ignoring_duplicates(
            self.engine,
            retrain_runs,
            [
                {
                    "request_id": request.request_id,
                    "requested_at": naive_utc(request.requested_at),
                    "launcher": launcher,
                    "status": status,
                    "request": request.model_dump_json(),
                    "finished_at": naive_utc(datetime.now(UTC)) if status in FINISHED else None,
                }
            ],
        )

    def set_status(self, request_id: str, status: RunStatus, detail: str | None = None) -> None:
        values: dict[str, object] = {"status": status, "detail": detail}
        if status in FINISHED:
            values["finished_at"] = naive_utc(datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(
                update(retrain_runs).where(retrain_runs.c.request_id == request_id).values(values)
            )

    def latest(self) -> tuple[datetime, str] | None:
        """(requested_at as UTC, status) of the newest run, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(retrain_runs.c.requested_at, retrain_runs.c.status)
                .order_by(retrain_runs.c.requested_at.desc())
                .limit(1)
            ).first()
        return None if row is None else (row[0].replace(tzinfo=UTC), row[1])


class RecordingLauncher:
    """Records the request and runs nothing: its runs finish as 'recorded' at once."""

    name = "recording"

    def __init__(self, ledger: RunLedger) -> None:
        self.ledger = ledger

    def launch(self, request: RetrainRequest) -> str:
        self.ledger.record(request, self.name, "recorded")
        return request.request_id

    def status(self, run_id: str) -> RunStatus:
        return "recorded"
