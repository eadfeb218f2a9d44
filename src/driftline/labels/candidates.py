"""Task candidates from the stream: what an operator should look at. Pure logic, no I/O.

- Predicted anomaly episodes: consecutive anomalous predictions of one sensor, closed by the
  sensor's next normal prediction, by a gap in event time, or by a maximum length.
- Drift episodes: per sensor, the windows behind a retrain request.
- Uncertain predictions (active learning): probability within a margin of the decision
  threshold, at most so many per sensor and per hour, and so many per hour in all.

A candidate's key is a hash of what it covers, so the same episode seen twice (a redelivery, a
restarted sync) is the same task.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from driftline.core.records import Prediction, RetrainRequest, as_utc

TaskKind = Literal["anomaly_episode", "drift_episode", "uncertain"]


def task_key(kind: str, sensor_id: str, start: datetime, end: datetime) -> str:
    stamp = f"{kind}|{sensor_id}|{as_utc(start).isoformat()}|{as_utc(end).isoformat()}"
    return hashlib.blake2b(stamp.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class TaskCandidate:
    kind: TaskKind
    sensor_id: str
    start: datetime
    end: datetime
    reason: str
    model_version: str | None = None

    @property
    def key(self) -> str:
        return task_key(self.kind, self.sensor_id, self.start, self.end)


@dataclass(frozen=True)
class CandidateConfig:
    threshold: float = 0.5
    uncertainty_margin: float = 0.1
    uncertain_per_sensor_per_hour: int = 2
    uncertain_per_hour: int = 20
    episode_gap: timedelta = timedelta(minutes=5)
    episode_max: timedelta = timedelta(hours=1)
    min_episode_predictions: int = 2
    context: timedelta = timedelta(minutes=2)  # readings shown before and after an episode


@dataclass
class _Episode:
    start: datetime
    end: datetime
    count: int
    model_version: str
    first_offset: tuple[int, int] | None = None  # (partition, offset) of its first prediction


@dataclass
class CandidateFinder:
    """Feeds on predictions one at a time; returns the candidates each one completes."""

    config: CandidateConfig = field(default_factory=CandidateConfig)
    _open: dict[str, _Episode] = field(default_factory=dict)
    _sampled: deque[tuple[datetime, str]] = field(default_factory=deque)

    def observe(
        self, p: Prediction, position: tuple[int, int] | None = None
    ) -> list[TaskCandidate]:
        out: list[TaskCandidate] = []
        ts = as_utc(p.ts)
        episode = self._open.get(p.sensor_id)
        if episode is not None and (
            ts - episode.end > self.config.episode_gap
            or ts - episode.start >= self.config.episode_max
            or not p.label
        ):
            out.extend(self._close(p.sensor_id))
            episode = None
        if p.label:
            if episode is None:
                self._open[p.sensor_id] = _Episode(ts, ts, 1, p.model_version, position)
            else:
                episode.end = max(episode.end, ts)
                episode.count += 1
        if self._uncertain(p) and self._sample(p.sensor_id, ts):
            c = self.config.context
            out.append(
                TaskCandidate(
                    "uncertain",
                    p.sensor_id,
                    ts - c,
                    ts + c,
                    f"probability {p.anomaly_probability:.3f} near threshold "
                    f"{self.config.threshold}",
                    p.model_version,
                )
            )
        return out

    def flush(self) -> list[TaskCandidate]:
        """Close every open episode (at the end of a one-shot pass)."""
        out: list[TaskCandidate] = []
        for sensor_id in list(self._open):
            out.extend(self._close(sensor_id))
        return out

    def open_positions(self) -> list[tuple[int, int]]:
        """Where the open episodes began: offsets a consumer must not commit past."""
        return [e.first_offset for e in self._open.values() if e.first_offset is not None]

    def _close(self, sensor_id: str) -> list[TaskCandidate]:
        e = self._open.pop(sensor_id)
        if e.count < self.config.min_episode_predictions:
            return []
        c = self.config.context
        reason = f"{e.count} consecutive anomalous predictions"
        return [
            TaskCandidate(
                "anomaly_episode", sensor_id, e.start - c, e.end + c, reason, e.model_version
            )
        ]

    def _uncertain(self, p: Prediction) -> bool:
        if p.anomaly_probability is None:  # baseline pending: no score to be unsure of
            return False
        return abs(p.anomaly_probability - self.config.threshold) <= self.config.uncertainty_margin

    def _sample(self, sensor_id: str, ts: datetime) -> bool:
        hour_ago = ts - timedelta(hours=1)
        while self._sampled and self._sampled[0][0] <= hour_ago:
            self._sampled.popleft()
        if len(self._sampled) >= self.config.uncertain_per_hour:
            return False
        mine = sum(1 for _, s in self._sampled if s == sensor_id)
        if mine >= self.config.uncertain_per_sensor_per_hour:
            return False
        self._sampled.append((ts, sensor_id))
        return True


def drift_candidates(request: RetrainRequest) -> list[TaskCandidate]:
    """One task per drifted sensor over the drift episode behind a retrain request."""
    return [
        TaskCandidate(
            "drift_episode",
            sensor_id,
            as_utc(request.data_start),
            as_utc(request.data_end),
            f"drift episode behind retrain request {request.request_id}: {request.reason}"[:500],
        )
        for sensor_id in sorted(set(request.sensors))
    ]
