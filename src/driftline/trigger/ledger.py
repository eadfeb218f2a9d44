"""The retrain_runs ledger: every launched run, its status and when it finished.

A launcher records a run here before starting it (status 'starting'), says when it is
running, and writes its outcome; the trigger asks it for the newest run and for the runs a
restart must follow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from sqlalchemy import Engine, Row, select, update
from sqlalchemy.exc import SQLAlchemyError

from driftline.core.records import RetrainRequest
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc
from driftline.store.tables import retrain_runs

RunStatus = Literal["starting", "running", "succeeded", "failed", "recorded"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "recorded"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordedRun:
    """A run as the ledger has it."""

    request: RetrainRequest
    attempt: int  # its relaunch number, 0 for a first launch
    finished_at: datetime | None  # UTC


class Unfinished(NamedTuple):
    request_id: str
    detail: str | None
    requested_at: datetime  # UTC


class RunLedger:
    """The retrain_runs table: every launched run, its status and when it finished."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(
        self, request: RetrainRequest, launcher: str, status: RunStatus, attempt: int = 0
    ) -> None:
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
                    "attempt": attempt,
                }
            ],
        )

    def set_status(
        self,
        request_id: str,
        status: RunStatus,
        detail: str | None = None,
        finished_at: datetime | None = None,
    ) -> None:
        """``finished_at``: when a finished run ended, if not now (a run that ended while no
        trigger watched it)."""
        values: dict[str, object] = {"status": status, "detail": detail}
        if status in FINISHED:
            values["finished_at"] = naive_utc(finished_at or datetime.now(UTC))
        with self.engine.begin() as conn:
            conn.execute(
                update(retrain_runs).where(retrain_runs.c.request_id == request_id).values(values)
            )

    def _newest(self) -> Row[str, datetime, str] | None:
        t = retrain_runs
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.c.request_id, t.c.requested_at, t.c.status)
                .order_by(t.c.requested_at.desc())
                .limit(1)
            ).first()

    def latest(self) -> tuple[datetime, str] | None:
        """(requested_at as UTC, status) of the newest run, if any."""
        row = self._newest()
        return None if row is None else (row[1].replace(tzinfo=UTC), row[2])

    def newest_failed(self) -> RecordedRun | None:
        """The newest run, if it failed: a restart resumes its relaunch."""
        row = self._newest()
        return None if row is None or row[2] != "failed" else self.run(row[0])

    def run(self, request_id: str) -> RecordedRun | None:
        t = retrain_runs
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.c.request, t.c.attempt, t.c.finished_at).where(
                    t.c.request_id == request_id
                )
            ).first()
        if row is None:
            return None
        finished = None if row[2] is None else row[2].replace(tzinfo=UTC)
        return RecordedRun(RetrainRequest.model_validate_json(row[0]), row[1], finished)

    def unfinished(self, launcher: str) -> list[Unfinished]:
        """``launcher``'s runs not finished, oldest first."""
        t = retrain_runs
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.request_id, t.c.detail, t.c.requested_at)
                .where(t.c.launcher == launcher)
                .where(t.c.status.not_in(sorted(FINISHED)))
                .order_by(t.c.requested_at)
            ).all()
        return [Unfinished(r[0], r[1], r[2].replace(tzinfo=UTC)) for r in rows]

    def detail(self, request_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(retrain_runs.c.detail).where(retrain_runs.c.request_id == request_id)
            ).scalar_one_or_none()


def mark_running(ledger: RunLedger, run_id: str, detail: str | None = None) -> None:
    """The run started: say so. A database error here must not fail the launch (the run is
    going, and 'starting' blocks a new one as 'running' does); its outcome is written later."""
    try:
        ledger.set_status(run_id, "running", detail)
    except SQLAlchemyError as exc:
        log.warning("run %s started; recording it as running failed: %s", run_id, exc)
