"""The parts of a label sync pass: task candidates out to Label Studio, annotations back as
labels, labels published, labelled scores.

The blocking parts (HTTP, SQL) are plain methods; ``publish_labels`` and ``publish_performance``
are coroutines. ``sync_pass.run_pass`` runs them, each part failing alone: Label Studio away
leaves the labels already stored to be published and scored, and everything left undone is done
on the next pass (tasks stay pending, annotations stay in Label Studio, labels stay unpublished).
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import and_, select

from driftline.core import metrics
from driftline.core.profile import Profile, load_profile
from driftline.core.records import LabelledPerformance, LabelRecorded, Reading, as_utc
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.labels.annotations import AnnotationError, Source, label_rows, task_info
from driftline.labels.client import LabelStudioClient
from driftline.labels.interface import label_config, task_data
from driftline.labels.performance import LabelledScore
from driftline.labels.scoring import SERVED, STREAMED, LabelledScores
from driftline.labels.store import LabelStore
from driftline.store.raw_store import naive_utc
from driftline.store.tables import raw_readings
from driftline.streaming.kafka import publish_all

log = logging.getLogger("driftline.labels")

PUSH_BATCH = 50


class LabelSync:
    def __init__(
        self,
        client: LabelStudioClient,
        store: LabelStore,
        profile: Profile,
        *,
        project_title: str,
        webhook_url: str | None = None,
        max_task_readings: int = 5000,
        scores: LabelledScores | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.profile = profile
        self.project_title = project_title
        self.webhook_url = webhook_url
        self.max_task_readings = max_task_readings
        self.scores = scores or LabelledScores(store.engine)
        self._project_id: int | None = None
        self._emitted: dict[str, tuple[int, int, int, int]] = {}

    @classmethod
    def from_settings(
        cls, client: LabelStudioClient, store: LabelStore, settings: Settings
    ) -> LabelSync:
        return cls(
            client,
            store,
            load_profile(settings.profile_path),
            project_title=settings.label_studio_project,
            webhook_url=settings.labels_webhook_url,
            max_task_readings=settings.labels_max_task_readings,
            scores=LabelledScores(
                store.engine, timedelta(seconds=settings.labels_predictions_keep_seconds)
            ),
        )

    def project_id(self) -> int:
        if self._project_id is None:
            project = self.client.ensure_project(self.project_title, label_config(self.profile))
            if self.webhook_url:
                self.client.ensure_webhook(project, self.webhook_url)
            self._project_id = project
        return self._project_id

    # --- tasks out -----------------------------------------------------------------------------
    def push_tasks(self) -> int:
        """Send pending candidates; returns how many tasks were created. A task Label Studio
        already has (sent before a crash, not yet marked) is only marked."""
        project = self.project_id()
        pending = self.store.pending_tasks(PUSH_BATCH)
        if not pending:
            return 0
        in_studio = self.client.task_ids_by_key(project)
        self.store.mark_sent({c.key: in_studio[c.key] for c in pending if c.key in in_studio})
        new = [c for c in pending if c.key not in in_studio]
        if not new:
            return 0
        self.client.import_tasks(
            project,
            [task_data(c, self.profile, self.readings(c.sensor_id, c.start, c.end)) for c in new],
        )
        in_studio = self.client.task_ids_by_key(project)
        self.store.mark_sent({c.key: in_studio[c.key] for c in new if c.key in in_studio})
        for c in new:
            metrics.label_tasks_created.labels(c.kind).inc()
        log.info("created %d labeling tasks", len(new))
        return len(new)

    def readings(
        self, sensor_id: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, dict[str, float]]]:
        """The sensor's stored readings in the range (the newest max_task_readings), those that
        parse as readings with finite values."""
        query = (
            select(raw_readings.c.event_ts, raw_readings.c.payload)
            .where(
                and_(
                    raw_readings.c.sensor_id == sensor_id,
                    raw_readings.c.event_ts >= naive_utc(start),
                    raw_readings.c.event_ts <= naive_utc(end),
                )
            )
            .order_by(raw_readings.c.event_ts.desc())
            .limit(self.max_task_readings)
        )
        out: list[tuple[datetime, dict[str, float]]] = []
        with self.store.engine.connect() as conn:
            for ts, payload in conn.execute(query):
                try:
                    reading = Reading.model_validate_json(payload)
                except ValueError:
                    continue  # the validator dead-lettered it; it is not the sensor's signal
                values = {k: v for k, v in reading.values.items() if math.isfinite(v)}
                out.append((as_utc(ts), values))
        return out

    # --- annotations in ------------------------------------------------------------------------
    def pull_annotations(self) -> int:
        """Every annotation of the project's tasks; returns how many labels were new."""
        new = 0
        for task in self.client.tasks(self.project_id()):
            for annotation in task.get("annotations") or []:
                new += self.accept(annotation, task, "pull")
        return new

    def accept(self, annotation: dict[str, Any], task: dict[str, Any], source: Source) -> int:
        """Store one annotation's labels; a bad one is logged and counted, and stays in Label
        Studio to be tried again."""
        try:
            ls_task_id = int(task.get("id", -1))
            info = task_info(task.get("data") or {})
            if not self.store.is_known_task(info.task_key):
                raise AnnotationError("unknown_task", f"task {info.task_key} was not made here")
            if not self.profile.is_known_sensor(info.sensor_id):
                raise AnnotationError("unknown_sensor", f"sensor {info.sensor_id!r:.80}")
            rows = label_rows(annotation, ls_task_id, info, source)
        except AnnotationError as exc:
            metrics.annotations_rejected.labels(exc.check).inc()
            log.warning(
                "annotation %s of task %s not taken (%s): %s",
                annotation.get("id"),
                task.get("id"),
                exc.check,
                exc.detail,
            )
            return 0
        new = self.store.record(rows, datetime.now(UTC))
        if new:
            for r in rows:
                metrics.labels_recorded.labels(r.label, source).inc()
        return new

    # --- labels topic and scores -----------------------------------------------------------------
    async def publish_labels(self, producer: AIOKafkaProducer, topics: Topics) -> int:
        rows = self.store.unpublished()
        if not rows:
            return 0
        records = [_record(r) for r in rows]
        await publish_all(
            producer,
            [(topics.labels, r.sensor_id.encode(), r.to_bytes()) for r in records],
        )
        self.store.mark_published([r.label_id for r in records])
        metrics.records_produced.labels("labeler", topics.labels).inc(len(records))
        return len(records)

    def score(self, window: int) -> dict[str, LabelledScore]:
        """The labelled scores, incrementally (driftline.labels.scoring): the labels recorded
        since the last pass applied, old predictions dropped, each version's newest read."""
        self.scores.apply_labels()
        self.scores.prune()
        scores = self.scores.scores(window)
        for version, score in scores.items():
            metrics.labelled_readings.labels(version).set(score.readings)
            by_source = dict(score.by_source)
            for source in (SERVED, STREAMED):
                metrics.labelled_readings_by_source.labels(version, source).set(
                    by_source.get(source, 0)
                )
            metrics.labelled_precision.labels(version).set(score.precision)
            metrics.labelled_recall.labels(version).set(score.recall)
            metrics.labelled_f1.labels(version).set(score.f1)
        return scores

    async def publish_performance(
        self, producer: AIOKafkaProducer, topics: Topics, scores: dict[str, LabelledScore]
    ) -> LabelledPerformance | None:
        """The production model's score, when it changed since it was last published."""
        version = await asyncio.to_thread(self.store.newest_model_version)
        score = scores.get(version or "")
        if score is None or score.data_start is None or score.data_end is None:
            return None
        counts = (
            score.readings,
            score.true_positives,
            score.false_positives,
            score.false_negatives,
        )
        if self._emitted.get(score.model_version) == counts:
            return None
        event = LabelledPerformance(
            model_version=score.model_version,
            readings=score.readings,
            true_positives=score.true_positives,
            false_positives=score.false_positives,
            false_negatives=score.false_negatives,
            precision=score.precision,
            recall=score.recall,
            f1=score.f1,
            sensors=list(score.sensors),
            data_start=as_utc(score.data_start),
            data_end=as_utc(score.data_end),
        )
        key = score.model_version.encode()
        await publish_all(producer, [(topics.labelled_performance, key, event.to_bytes())])
        self._emitted[score.model_version] = counts
        return event


def _record(row: dict[str, Any]) -> LabelRecorded:
    return LabelRecorded(
        label_id=row["label_id"],
        sensor_id=row["sensor_id"],
        start=as_utc(row["start_ts"]),
        end=as_utc(row["end_ts"]),
        label=row["label"],
        annotator=row["annotator"],
        task_key=row["task_key"],
        ls_task_id=row["ls_task_id"],
        annotation_id=row["annotation_id"],
        annotated_at=as_utc(row["annotated_at"]),
        source=row["source"],
        recorded_at=as_utc(row["recorded_at"]),
    )
