"""The run ledger's relaunch number (retrain_runs.attempt, Alembic revision 0007) on MariaDB
and SQLite: written with the run, read back from the column, and given to runs of before the
revision from their reason text, once, by the upgrade."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from driftline.core.records import RetrainRequest
from driftline.store.migrations import current, head, migrate
from driftline.store.raw_store import RawStore
from driftline.trigger.ledger import RunLedger
from driftline.trigger.relaunch import relaunch_request

pytestmark = pytest.mark.integration
T0 = datetime(2026, 12, 1, tzinfo=UTC)


def first_request() -> RetrainRequest:
    return RetrainRequest(
        reason="pump-001: 3/3 drifted windows in a row; 1/1 sensors drifted: retraining",
        sensors=["pump-001"],
        drift_event_ids=["ev-1"],
        data_start=T0,
        data_end=T0 + timedelta(minutes=3),
    )


def test_the_upgrade_gives_runs_of_before_their_relaunch_number(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        migrate(engine, "0005")
        first = first_request()
        second = relaunch_request(first, 2, T0)
        before = sa.table(  # retrain_runs as revision 0005 has it
            "retrain_runs",
            *(sa.column(c) for c in ("request_id", "requested_at", "launcher", "status")),
            sa.column("request"),
        )
        with engine.begin() as conn:
            for r in (first, second):
                conn.execute(
                    sa.insert(before).values(
                        request_id=r.request_id,
                        requested_at=r.requested_at.replace(tzinfo=None),
                        launcher="kfp",
                        status="failed",
                        request=r.model_dump_json(),
                    )
                )
        migrate(engine)
        assert current(engine) == head()
        ledger = RunLedger(engine)
        got = [ledger.run(r.request_id) for r in (first, second)]
        assert [g.attempt if g else None for g in got] == [0, 2]
        migrate(engine)  # at the head already: nothing to do
    finally:
        engine.dispose()


def test_the_relaunch_number_is_written_with_the_run(database_url: str) -> None:
    store = RawStore.from_url(database_url)
    store.create_tables()
    try:
        ledger = RunLedger(store.engine)
        first = first_request()
        relaunched = relaunch_request(first, 1, T0)
        ledger.record(first, "kfp", "failed")
        ledger.record(relaunched, "kfp", "starting", attempt=1)
        run = ledger.run(first.request_id)
        assert run is not None and (run.request, run.attempt) == (first, 0)
        assert run.finished_at is not None
        run = ledger.run(relaunched.request_id)
        assert run is not None and (run.attempt, run.finished_at) == (1, None)
        assert ledger.run("0" * 32) is None
    finally:
        store.engine.dispose()
