"""RetrainPolicy: decides when drift is real. Pure logic, with an injectable clock.

Drift is real when at least ``min_sensors`` sensors each have ``consecutive_windows`` windows
in a row whose drift share reaches ``share_threshold``. Then a retraining fires, unless one
is already in flight or the last one fired less than ``cooldown_seconds`` ago.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from driftline.core.records import DriftEvent


@dataclass(frozen=True)
class PolicyConfig:
    share_threshold: float = 0.375
    consecutive_windows: int = 3
    min_sensors: int = 1
    cooldown_seconds: float = 3600.0
    max_run_seconds: float = 7200.0


@dataclass(frozen=True)
class StreakWindow:
    """One drifted window of a sensor's streak: what a firing needs of its event."""

    event_id: str
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class Decision:
    fired: bool
    reason: str
    streak: int = 0  # the event's sensor's drifted windows in a row, after this decision
    sensors: list[str] = field(default_factory=list)
    drift_event_ids: list[str] = field(default_factory=list)
    data_start: datetime | None = None
    data_end: datetime | None = None


class RetrainPolicy:
    def __init__(
        self,
        config: PolicyConfig,
        *,
        last_fired_at: datetime | None = None,
        in_flight_since: datetime | None = None,
    ) -> None:
        self.config = config
        self.last_fired_at = last_fired_at
        self.in_flight_since = in_flight_since
        self._streaks: dict[str, list[StreakWindow]] = {}

    def streak(self, sensor_id: str) -> int:
        return len(self._streaks.get(sensor_id, ()))

    def streaks(self) -> dict[str, list[StreakWindow]]:
        return {s: list(w) for s, w in self._streaks.items()}

    def restore_streaks(self, streaks: dict[str, list[StreakWindow]]) -> None:
        """The streaks as recorded before a restart (driftline.trigger.store)."""
        self._streaks = {s: list(w) for s, w in streaks.items() if w}

    def run_finished(self) -> None:
        self.in_flight_since = None

    def blockers(self, now: datetime) -> list[str]:
        """Why a retraining may not fire now (none: it may). Every rule, drift's or the
        labelled-performance one, shares the cooldown and the one run in flight."""
        c = self.config
        blockers = []
        if self.in_flight_since is not None:
            if now - self.in_flight_since <= timedelta(seconds=c.max_run_seconds):
                blockers.append(f"a retraining is in flight since {self.in_flight_since}")
            else:
                # A run past its deadline is stuck: it no longer blocks a new one.
                self.in_flight_since = None
        if self.last_fired_at is not None:
            until = self.last_fired_at + timedelta(seconds=c.cooldown_seconds)
            if now < until:
                blockers.append(f"cooling down until {until.isoformat()}")
        return blockers

    def fired(self, now: datetime) -> None:
        self.last_fired_at = self.in_flight_since = now

    def observe(self, event: DriftEvent, now: datetime) -> Decision:
        c = self.config
        if event.drift_share >= c.share_threshold or event.flatlined:
            window = StreakWindow(event.event_id, event.window_start, event.window_end)
            self._streaks.setdefault(event.sensor_id, []).append(window)
        else:
            self._streaks.pop(event.sensor_id, None)
            return Decision(
                False,
                f"{event.sensor_id}: drift share {event.drift_share:.2f} below "
                f"{c.share_threshold:.2f} and nothing flatlined; streak reset",
            )

        drifted = {s: ev for s, ev in self._streaks.items() if len(ev) >= c.consecutive_windows}
        streak = self.streak(event.sensor_id)
        progress = (
            f"{event.sensor_id}: {streak}/{c.consecutive_windows} "
            f"drifted windows in a row; {len(drifted)}/{c.min_sensors} sensors drifted"
        )
        if len(drifted) < c.min_sensors:
            return Decision(False, progress, streak)

        blockers = self.blockers(now)
        if blockers:
            return Decision(False, f"{progress}; {'; '.join(blockers)}", streak)

        events = [e for evs in drifted.values() for e in evs]
        for sensor in drifted:
            del self._streaks[sensor]
        self.fired(now)
        return Decision(
            True,
            f"{progress}: retraining",
            sensors=sorted(drifted),
            drift_event_ids=[e.event_id for e in events],
            data_start=min(e.window_start for e in events),
            data_end=max(e.window_end for e in events),
        )
