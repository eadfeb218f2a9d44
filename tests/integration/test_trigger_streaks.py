"""DecisionStore.streaks on MariaDB and SQLite: the streaks a restarted trigger restores are
the ones the policy had, read in the same three queries whatever the number of sensors (up to
400 with a streak), and the same as the query per sensor it replaced gave."""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from driftline.store.raw_store import RawStore
from driftline.store.tables import trigger_decisions
from driftline.trigger import store as trigger_store
from driftline.trigger.machine import Pending
from driftline.trigger.policy import RetrainPolicy, StreakWindow
from driftline.trigger.store import DecisionStore, streak_lengths
from tests.unit.factories import NOW
from tests.unit.test_policy import config
from tests.unit.test_policy import event as drift_event

pytestmark = pytest.mark.integration


def streaks_one_query_per_sensor(engine: Engine) -> dict[str, list[StreakWindow]]:
    """DecisionStore.streaks as it was before, a query per sensor for its windows: the
    reference (the heads and firings it read are ``streak_lengths``, unchanged)."""
    t = trigger_decisions
    streaks = {}
    with engine.connect() as conn:
        for sensor, length in streak_lengths(conn):
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


@contextlib.contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs meanwhile."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("per_query", [400, 2])
def test_streaks_are_the_policys_in_three_queries(
    database_url: str, per_query: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 2 sensors per statement (as 400 are with a larger fleet): one more per 2."""
    monkeypatch.setattr(trigger_store, "SENSORS_PER_QUERY", per_query)
    store = RawStore.from_url(database_url)
    store.create_tables()
    decisions = DecisionStore(store.engine)
    # Two sensors drifted fire; a cooldown then holds streaks beyond three windows.
    policy = RetrainPolicy(config(min_sensors=2, cooldown_seconds=1800))
    rng = random.Random(7)
    sensors = [f"pump-{n:03d}" for n in range(8)]
    now = NOW
    fired = longest = 0
    checked = []
    try:
        for step in range(400):
            now += timedelta(minutes=1)
            e = drift_event(rng.choice(sensors), share=1.0 if rng.random() < 0.8 else 0.1)
            # As the machine records it: the streak the policy keeps for the event's sensor.
            decision = replace(policy.observe(e, now), streak=policy.streak(e.sensor_id))
            fired += decision.fired
            if decision.fired:
                policy.run_finished()
            decisions.record_drift(e, Pending(now, decision, None))
            if step % 50 == 49:
                with statements(store.engine) as ran:
                    restored = decisions.streaks()
                assert len(ran) == 2 + math.ceil(len(restored) / per_query), ran
                assert restored == policy.streaks()
                assert restored == streaks_one_query_per_sensor(store.engine)
                checked.append(len(restored))
                longest = max([longest, *(len(w) for w in restored.values())])
        # Firings consumed streaks, and the cooldown held some beyond three windows.
        assert fired >= 2 and longest > 3 and all(checked), (fired, longest, checked)
    finally:
        store.engine.dispose()


def test_no_decisions_no_streaks(database_url: str) -> None:
    store = RawStore.from_url(database_url)
    store.create_tables()
    try:
        assert DecisionStore(store.engine).streaks() == {}
    finally:
        store.engine.dispose()
