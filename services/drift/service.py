"""drift: windows of valid readings per sensor, each compared with the reference data.

One DriftEvent per closed window. The reference is the training data of the model in
production: it is reloaded when a ModelPromoted event arrives, with the baselines that came
with it. On the baseline basis (the default, ``DRIFTLINE_DRIFT_BASIS``) both sides are taken
relative to each sensor's baseline (driftline.drift.relative); a sensor without one is pending.
Offsets are committed only up to the oldest reading an open window still holds, so a restart
rebuilds open windows from the log instead of losing them (closed windows may then be
re-emitted with the same event id, which the trigger ignores). A partition holds several
sensors, so that replay also brings back readings of other sensors whose windows were already
emitted: the tail of the drift events topic, read back at start, tells which readings to skip
(driftline.drift_recovery).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from aiokafka import TopicPartition
from pydantic import ValidationError

from driftline.anomaly.baseline_store import BaselineStore
from driftline.core import metrics
from driftline.core.errors import ConfigurationError
from driftline.core.profile import load_profile
from driftline.core.recent_ids import RecentIds
from driftline.core.records import DriftEvent, FailedCheck, ModelPromoted, ValidReading
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.core.valid_topic import decode_valid_reading
from driftline.drift.baselines import (
    BaselineCompletion,
    StoredBaselines,
    baseline_lookup,
    bundle_baselines,
)
from driftline.drift.detector import DriftDetector
from driftline.drift.recovery import Emitted, emitted_windows
from driftline.drift.reference import Reference, load_reference
from driftline.drift.relative import PENDING, BaselineDriftDetector
from driftline.drift.windows import ClosedWindow, SensorWindows
from driftline.streaming.dead_letters import dead_letter
from driftline.streaming.kafka import publish_all, read_to_end
from driftline.streaming.messages import Message
from driftline.streaming.readiness import wait_for_kafka
from driftline.streaming.runtime import BatchHandler, ServiceContext, run_consumer_service
from driftline.streaming.service_main import service_main

NAME = "drift"
log = logging.getLogger(NAME)
Detector = DriftDetector | BaselineDriftDetector


class DriftHandler(BatchHandler):
    def __init__(
        self,
        ctx: ServiceContext,
        features: list[str],
        detector: Detector,
        emitted: dict[str, Emitted] | None = None,
        stored: StoredBaselines | None = None,
    ) -> None:
        s = ctx.settings
        self.ctx = ctx
        self.features = features
        self.detector = detector
        self.stored = stored or stored_baselines(s)
        # New sensors' baselines, completed here or by serving, whichever stores first.
        self.completion = BaselineCompletion(self.stored, features, s.baseline_readings)
        self.windows = SensorWindows(
            features, s.drift_window_size, s.drift_window_seconds, s.drift_min_window_size
        )
        # Readings republished after a validator crash must not count twice in a window.
        self.recent = RecentIds(s.dedup_capacity)
        self.unpublished: list[DriftEvent] = []
        # Readings replayed after a restart that emitted windows hold already.
        self.emitted = emitted or {}

    async def handle(self, batch: list[Message]) -> None:
        topics = self.ctx.topics
        closed: list[ClosedWindow] = []
        rejected: list[tuple[str, bytes | None, bytes]] = []
        fresh: list[ValidReading] = []
        now = time.monotonic()
        for m in batch:
            if m.topic == topics.model_promotions:
                rejected += await self._promote(m)
                continue
            try:
                reading = decode_valid_reading(m.value)
            except ValidationError as exc:
                reason = FailedCheck(check="bad_record", detail=str(exc.errors()[:1])[:300])
                rejected.append(
                    (topics.dead_letter, m.key, dead_letter(m, NAME, [reason]).to_bytes())
                )
                continue
            if reading.reading_id in self.recent:
                continue
            done = self.emitted.get(reading.sensor_id)
            if done is not None and done.holds(reading, m.timestamp_ms):
                continue
            self.recent.add(reading.reading_id)
            fresh.append(reading)
            closed += self.windows.add(reading, (m.topic, m.partition), m.offset, now)
        if isinstance(self.detector, BaselineDriftDetector):
            await self.completion.complete(self.completion.add(fresh, self.detector.lookup))
        await self._publish(closed, rejected)

    async def tick(self) -> None:
        idle = self.windows.sweep(time.monotonic())
        if idle:
            await self._publish(idle, [])

    def commit_offsets(self, batch: list[Message]) -> dict[TopicPartition, int]:
        offsets: dict[TopicPartition, int] = {}
        for m in batch:
            tp = TopicPartition(m.topic, m.partition)
            offsets[tp] = max(offsets.get(tp, 0), m.offset + 1)
        for (topic, partition), first in self.windows.oldest_needed().items():
            tp = TopicPartition(topic, partition)
            if tp in offsets:
                offsets[tp] = min(offsets[tp], first)
        return offsets

    async def _publish(
        self, closed: list[ClosedWindow], rejected: list[tuple[str, bytes | None, bytes]]
    ) -> None:
        # Windows close once: if publishing fails (Kafka away), the retried batch's readings
        # are skipped as seen and would not close them again, so their events wait here for
        # the next publish. Offsets are committed only after a publish succeeded.
        self.unpublished += [self.detector.compare(w) for w in closed]
        events = self.unpublished
        out = [(self.ctx.topics.drift_events, e.sensor_id.encode(), e.to_bytes()) for e in events]
        await publish_all(self.ctx.producer, out + rejected)
        self.unpublished = []
        for e in events:
            metrics.drift_windows.labels(str(e.drifted).lower()).inc()
            if e.baseline == PENDING:
                metrics.drift_baseline_pending.inc()
            metrics.drift_share.labels(e.sensor_id).set(e.drift_share)
            for f in e.features:
                metrics.drift_statistic.labels(e.sensor_id, f.feature).set(f.statistic)
            if e.drifted:
                drifted = [f.feature for f in e.features if f.drifted] + e.flatlined
                log.info(
                    "drift on %s: share %.2f (%s)", e.sensor_id, e.drift_share, ", ".join(drifted)
                )

    async def _promote(self, message: Message) -> list[tuple[str, bytes | None, bytes]]:
        """Swap in the promoted model's reference; a bad promotion is dead-lettered."""
        try:
            event = ModelPromoted.model_validate_json(message.value or b"")
            reference = await asyncio.to_thread(
                load_reference, Path(event.reference_uri), self.features
            )
            detector = await asyncio.to_thread(
                make_detector, self.ctx.settings, reference, self.stored
            )
        except (ValidationError, ConfigurationError, OSError, ValueError) as exc:
            metrics.service_errors.labels(NAME, "reference_reload").inc()
            log.error("dead-lettering promotion at offset %d: %s", message.offset, exc)
            reason = FailedCheck(check="bad_promotion", detail=str(exc)[:300])
            letter = dead_letter(message, NAME, [reason])
            return [(self.ctx.topics.dead_letter, message.key, letter.to_bytes())]
        self.detector = detector
        metrics.reference_rows.set(len(reference))
        metrics.model_promotions.labels(event.model_name).inc()
        metrics.reference_model_version.set(metrics.version_number(event.model_version))
        log.info(
            "model %s v%s promoted: reference %s (%d rows), %s",
            event.model_name,
            event.model_version,
            reference.reference_id,
            len(reference),
            describe(detector),
        )
        return []


async def reference_in_production(settings: Settings, features: list[str]) -> Reference:
    """The reference of the latest promotion on the topic, else the baseline file.

    Read from the topic (not from this service's committed position) so that a restarted
    or an added drift worker starts with the model in production, not the baseline. The topic
    exists: ``run`` waits for Kafka and creates every topic first.
    """
    topic = Topics(settings.topic_prefix).model_promotions
    for message in reversed(await read_to_end(settings, topic)):
        try:
            event = ModelPromoted.model_validate_json(message.value or b"")
            reference = load_reference(Path(event.reference_uri), features)
            metrics.reference_model_version.set(metrics.version_number(event.model_version))
            return reference
        except (ValidationError, ConfigurationError, OSError, ValueError) as exc:
            log.warning("skipping promotion at offset %d: %s", message.offset, exc)
    return load_reference(settings.resolved_reference_path, features)


def stored_baselines(settings: Settings) -> StoredBaselines:
    return StoredBaselines(
        BaselineStore(settings.data_dir / "baselines"), settings.drift_baseline_refresh_seconds
    )


def make_detector(
    settings: Settings, reference: Reference, stored: StoredBaselines | None = None
) -> Detector:
    """The detector of ``settings.drift_basis``; on the baseline basis, sensors are looked up
    in the baselines that came with the reference, then in the baseline store."""
    if settings.drift_basis == "raw":
        return DriftDetector(
            reference,
            settings.drift_stattest,
            settings.drift_stattest_threshold,
            settings.drift_share_threshold,
        )
    lookup = baseline_lookup(
        bundle_baselines(reference.source),
        stored or stored_baselines(settings),
        reference.features,
    )
    return BaselineDriftDetector(
        reference,
        lookup,
        settings.drift_stattest,
        settings.drift_stattest_threshold,
        settings.drift_share_threshold,
        settings.baseline_readings,
    )


def describe(detector: Detector) -> str:
    if isinstance(detector, DriftDetector):
        return "raw basis"
    r = detector.relative
    return (
        f"baseline basis ({r.sensors} reference sensors relative to a baseline, {r.own} of "
        f"them to their own first rows, {r.skipped} too short)"
    )


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    profile = load_profile(settings.profile_path)
    if not await wait_for_kafka(NAME, settings, stop):  # it reads topics before its loop
        return
    reference = await reference_in_production(settings, profile.features)
    metrics.reference_rows.set(len(reference))
    metrics.start_at_zero(metrics.drift_windows, "true", "false")
    metrics.start_at_zero(metrics.drift_baselines_completed, "stored", "existing", "error")
    metrics.start_at_zero(metrics.model_promotions, settings.model_name)
    stored = stored_baselines(settings)
    detector = make_detector(settings, reference, stored)
    log.info(
        "reference %s: %d rows from %s, %s",
        reference.reference_id,
        len(reference),
        reference.source,
        describe(detector),
    )
    emitted = (await emitted_windows(settings)).emitted
    await run_consumer_service(
        NAME,
        settings,
        lambda topics: [topics.valid_readings, topics.model_promotions],
        lambda ctx: DriftHandler(ctx, profile.features, detector, emitted, stored),
        stop=stop,
    )


if __name__ == "__main__":
    service_main(NAME, run)
