"""The labeler's intake from the stream: predictions and retrain requests become stored
predictions (for the labelled scores) and stored task candidates (sent by the next pass); with a
``StreamedScorer``, the valid readings become the champion's streamed predictions too (stored for
the labelled scores only: tasks come from what serving predicted).

A message that is not a known record is returned with its reason, for the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from pydantic import ValidationError

from driftline.core.records import FailedCheck, Prediction, RetrainRequest, ValidReading
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.core.valid_topic import WireValidReading, decode_valid_reading
from driftline.labels.candidates import CandidateConfig, CandidateFinder, drift_candidates
from driftline.labels.scoring import SERVED, STREAMED, LabelledScores
from driftline.labels.store import LabelStore
from driftline.streaming.messages import Message

if TYPE_CHECKING:
    from driftline.labels.streamed import StreamedScorer


def candidate_config(settings: Settings) -> CandidateConfig:
    return CandidateConfig(
        threshold=settings.serving_threshold,
        uncertainty_margin=settings.labels_uncertainty_margin,
        uncertain_per_sensor_per_hour=settings.labels_uncertain_per_sensor_per_hour,
        uncertain_per_hour=settings.labels_uncertain_per_hour,
        episode_gap=timedelta(seconds=settings.labels_episode_gap_seconds),
        episode_max=timedelta(seconds=settings.labels_episode_max_seconds),
        context=timedelta(seconds=settings.labels_context_seconds),
    )


def labelled_scores(store: LabelStore, settings: Settings) -> LabelledScores:
    return LabelledScores(store.engine, timedelta(seconds=settings.labels_predictions_keep_seconds))


def subscribed(topics: Topics, streamed: bool = False) -> list[str]:
    """The topics the labeler reads; ``streamed``: the valid readings too, to score them."""
    wanted = [topics.predictions, topics.retrain_requests]
    return [*wanted, topics.valid_readings] if streamed else wanted


@dataclass
class Rejected:
    message: Message
    reason: FailedCheck


class LabelIntake:
    def __init__(
        self,
        store: LabelStore,
        topics: Topics,
        config: CandidateConfig,
        scores: LabelledScores | None = None,
        streamed: StreamedScorer | None = None,
    ) -> None:
        self.store = store
        self.scores = scores or LabelledScores(store.engine)
        self.streamed = streamed
        self.topics = topics
        self.finder = CandidateFinder(config)

    def take(self, batch: list[Message], flush: bool = False) -> list[Rejected]:
        """Store the batch's predictions and the candidates it completes (blocking: SQL).
        ``flush`` closes open episodes too (a one-shot pass)."""
        predictions: list[Prediction] = []
        readings: list[ValidReading | WireValidReading] = []
        candidates = []
        rejected: list[Rejected] = []
        for m in batch:
            try:
                if m.topic == self.topics.valid_readings:
                    readings.append(decode_valid_reading(m.value))
                    continue
                if m.topic == self.topics.retrain_requests:
                    request = RetrainRequest.model_validate_json(m.value or b"")
                    candidates.extend(drift_candidates(request))
                    continue
                p = Prediction.model_validate_json(m.value or b"")
            except ValidationError as exc:
                detail = str(exc.errors()[:1])[:300]
                rejected.append(Rejected(m, FailedCheck(check="bad_record", detail=detail)))
                continue
            predictions.append(p)
            candidates.extend(self.finder.observe(p, (m.partition, m.offset)))
        if flush:
            candidates.extend(self.finder.flush())
        self.scores.add_predictions(predictions, SERVED)
        if readings and self.streamed is not None:
            self.scores.add_predictions(self.streamed.predictions(readings), STREAMED)
        self.store.add_candidates(candidates, datetime.now(UTC))
        return rejected

    def commit_offsets(self, batch: list[Message]) -> dict[TopicPartition, int]:
        """Past the batch, except where an open episode began: a restart must see it again."""
        offsets = {TopicPartition(m.topic, m.partition): m.offset + 1 for m in batch}
        for partition, offset in self.finder.open_positions():
            tp = TopicPartition(self.topics.predictions, partition)
            if tp in offsets:
                offsets[tp] = min(offsets[tp], offset)
        return offsets
