"""A whole label sync pass and the labels' publication after a webhook, each part on its own:
a dependency away fails its part alone, counted and logged, and the next pass does it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from driftline.core import metrics
from driftline.core.records import LabelledPerformance
from driftline.core.topics import Topics
from driftline.labels.client import LabelStudioUnavailable
from driftline.labels.performance import LabelledScore
from driftline.labels.sync import LabelSync

log = logging.getLogger("driftline.labels")


@dataclass
class PassResult:
    tasks_created: int = 0
    labels_new: int = 0
    labels_published: int = 0
    scores: dict[str, LabelledScore] = field(default_factory=dict)
    performance: LabelledPerformance | None = None
    failures: list[str] = field(default_factory=list)


async def run_pass(
    sync: LabelSync, producer: AIOKafkaProducer, topics: Topics, window: int
) -> PassResult:
    """Push tasks, pull annotations, publish labels, score: each part on its own, so Label
    Studio away still publishes and scores what is stored. Failures are logged and counted."""
    result = PassResult()
    try:
        result.tasks_created = await asyncio.to_thread(sync.push_tasks)
        result.labels_new = await asyncio.to_thread(sync.pull_annotations)
    except LabelStudioUnavailable as exc:
        _failed(result, "label_studio", exc)
    except SQLAlchemyError as exc:
        _failed(result, "database", exc)
    try:
        result.labels_published = await sync.publish_labels(producer, topics)
    except SQLAlchemyError as exc:
        _failed(result, "database", exc)
    except KafkaError as exc:
        _failed(result, "kafka", exc)
    try:
        result.scores = await asyncio.to_thread(sync.score, window)
        result.performance = await sync.publish_performance(producer, topics, result.scores)
    except SQLAlchemyError as exc:
        _failed(result, "database", exc)
    except KafkaError as exc:
        _failed(result, "kafka", exc)
    if not result.failures:
        metrics.label_sync_last_success.set_to_current_time()
    return result


def _failed(result: PassResult, dependency: str, exc: Exception) -> None:
    metrics.label_sync_failures.labels(dependency).inc()
    result.failures.append(f"{dependency}: {exc}")
    log.warning("label sync: %s failed (%s); retried next pass", dependency, str(exc)[:300])


async def publish_only(sync: LabelSync, producer: AIOKafkaProducer, topics: Topics) -> None:
    """Publish stored labels now (after a webhook), outside a full pass."""
    try:
        await sync.publish_labels(producer, topics)
    except SQLAlchemyError as exc:
        _failed(PassResult(), "database", exc)
    except KafkaError as exc:
        _failed(PassResult(), "kafka", exc)
