"""The retrain_runs ledger: every launched run, its status and when it finished.

A launcher records a run here before starting it (status 'starting'), says when it is
running, and writes its outcome; the trigger asks it for the newest run and for the runs a
restart must follow.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError

from driftline.core.records import RetrainRequest
from driftline.store.raw_store import insert_ignoring_duplicates, naive_utc, retrain_runs

RunStatus = Literal["starting", "running", "succeeded", "failed", "recorded"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "recorded"})

log = logging.getLogger(__name__)


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

    def newest_failed(self) -> tuple[RetrainRequest, datetime] | None:
        """The newest run's request and when it finished, if it failed: a restart resumes its
        relaunch."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(retrain_runs.c.request, retrain_runs.c.status, retrain_runs.c.finished_at)
                .order_by(retrain_runs.c.requested_at.desc())
                .limit(1)
            ).first()
        if row is None or row[1] != "failed":
            return None
        finished = (row[2] or datetime.now(UTC)).replace(tzinfo=UTC)
        return RetrainRequest.model_validate_json(row[0]), finished

    def request(self, request_id: str) -> RetrainRequest | None:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(retrain_runs.c.request).where(retrain_runs.c.request_id == request_id)
            ).scalar_one_or_none()
        return None if found is None else RetrainRequest.model_validate_json(found)

    def unfinished(self, launcher: str) -> list[tuple[str, str | None]]:
        """(request_id, detail) of ``launcher``'s runs not finished, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(retrain_runs.c.request_id, retrain_runs.c.detail)
                .where(retrain_runs.c.launcher == launcher)
                .where(retrain_runs.c.status.not_in(sorted(FINISHED)))
                .order_by(retrain_runs.c.requested_at)
            ).all()
        return [(r[0], r[1]) for r in rows]

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
