"""The production model measured against operators' labels, and the retraining rule on it. Pure.

Each prediction the labeler saw takes the label of the narrowest labelled span of its sensor
that covers it (a region inside a task beats the task's verdict); ``unsure`` spans and
unlabelled readings are left out. Precision, recall and F1 of ``fault`` are computed per model
version over its last ``window`` labelled readings (by event time).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftline.trigger.policy import Decision


@dataclass(frozen=True)
class Scored:
    reading_id: str
    sensor_id: str
    event_ts: datetime
    model_version: str
    predicted: int
    actual: int
    source: str = "served"  # or "streamed": scored by the labeler from the valid-readings topic


@dataclass(frozen=True)
class LabelledScore:
    model_version: str
    readings: int
    true_positives: int
    false_positives: int
    false_negatives: int
    sensors: tuple[str, ...] = ()
    data_start: datetime | None = None  # event time of the oldest reading scored
    data_end: datetime | None = None
    by_source: tuple[tuple[str, int], ...] = ()  # readings of the window per source

    @property
    def precision(self) -> float:
        flagged = self.true_positives + self.false_positives
        return self.true_positives / flagged if flagged else 1.0

    @property
    def recall(self) -> float:
        faults = self.true_positives + self.false_negatives
        return self.true_positives / faults if faults else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def join_labels(
    predictions: Iterable[Mapping[str, Any]], spans: Iterable[Mapping[str, Any]]
) -> list[Scored]:
    """Predictions (reading_id, sensor_id, event_ts, predicted, model_version) against label
    spans (sensor_id, start_ts, end_ts, label)."""
    by_sensor: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for s in spans:
        by_sensor[s["sensor_id"]].append(s)
    out: list[Scored] = []
    for p in predictions:
        covering = [
            s
            for s in by_sensor.get(p["sensor_id"], ())
            if s["start_ts"] <= p["event_ts"] <= s["end_ts"]
        ]
        if not covering:
            continue
        narrowest = min(covering, key=lambda s: s["end_ts"] - s["start_ts"])
        if narrowest["label"] not in ("fault", "normal"):
            continue
        out.append(
            Scored(
                p["reading_id"],
                p["sensor_id"],
                p["event_ts"],
                p["model_version"],
                int(p["predicted"]),
                int(narrowest["label"] == "fault"),
            )
        )
    return out


def rolling_scores(scored: Iterable[Scored], window: int) -> dict[str, LabelledScore]:
    """Per model version, the score over its last ``window`` labelled readings."""
    by_version: dict[str, list[Scored]] = defaultdict(list)
    for s in scored:
        by_version[s.model_version].append(s)
    out: dict[str, LabelledScore] = {}
    for version, items in by_version.items():
        last = sorted(items, key=lambda s: (s.event_ts, s.reading_id))[-window:]
        out[version] = LabelledScore(
            version,
            len(last),
            sum(1 for s in last if s.predicted and s.actual),
            sum(1 for s in last if s.predicted and not s.actual),
            sum(1 for s in last if not s.predicted and s.actual),
            tuple(sorted({s.sensor_id for s in last})),
            last[0].event_ts,
            last[-1].event_ts,
            tuple(sorted(Counter(s.source for s in last).items())),
        )
    return out


@dataclass(frozen=True)
class LabelledRule:
    f1_threshold: float = 0.6
    min_readings: int = 50


def labelled_decision(score: LabelledScore, rule: LabelledRule) -> Decision:
    """Retrain when the production model's labelled F1 over its last labelled readings is
    below the threshold, once there are enough of them to say so."""
    summary = (
        f"labelled F1 {score.f1:.3f} (precision {score.precision:.3f}, recall "
        f"{score.recall:.3f}) of model {score.model_version} over the last {score.readings} "
        f"labelled readings"
    )
    if score.readings < rule.min_readings:
        return Decision(False, f"{summary}: fewer than {rule.min_readings}")
    if score.f1 < rule.f1_threshold:
        return Decision(True, f"{summary}: below {rule.f1_threshold}")
    return Decision(False, f"{summary}: at or above {rule.f1_threshold}")
