"""validator: checks raw readings in micro-batches; valid ones go on, invalid ones to the DLQ.

Every message of a batch is on one of the two topics, acknowledged by the broker, before the
batch's offsets are committed: at-least-once, so a crash in between republishes the batch
(consumers downstream skip reading ids they have seen). With ``validator_batches_in_flight``
above 1, the next batch is validated while the broker acknowledges the previous one's records
(offsets still committed in order), and its records go out once the previous batch's are
acknowledged, so each sensor's valid readings keep their order even when a batch is retried
(``driftline.streaming.batch_order``). A reading is remembered as seen from its verdict on,
and forgotten again if its batch's records are not acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from driftline.core import metrics
from driftline.core.profile import load_profile
from driftline.core.settings import Settings
from driftline.streaming.batch_order import earlier_batches_done
from driftline.streaming.kafka import publish_all
from driftline.streaming.messages import Message
from driftline.streaming.runtime import BatchHandler, ServiceContext, run_consumer_service
from driftline.streaming.service_main import service_main
from driftline.validation.batch import ReadingValidator

NAME = "validator"


class ValidatorHandler(BatchHandler):
    def __init__(
        self, ctx: ServiceContext, validator: ReadingValidator, batches_in_flight: int = 1
    ) -> None:
        self.ctx = ctx
        self.validator = validator
        self.batches_in_flight = batches_in_flight

    async def handle(self, batch: list[Message]) -> None:
        # Columns in, bytes out: no per-reading Python object on the way (validate_wire).
        verdict = self.validator.validate_wire_isolating_errors(batch)
        topics = self.ctx.topics
        out = [(topics.valid_readings, m.key, payload) for m, payload in verdict.valid]
        out += [(topics.dead_letter, m.key, d.to_bytes()) for m, d in verdict.invalid]
        # Remembered before the records are acknowledged: the next batch, validated
        # meanwhile (batches_in_flight), finds them seen. Forgotten if they are not: this
        # batch is then handled again, and must not find its own readings seen.
        self.validator.remember_wire(verdict)
        try:
            await earlier_batches_done()
            await publish_all(self.ctx.producer, out)
        except BaseException:
            self.validator.forget_wire(verdict)
            raise

        metrics.readings_valid.inc(len(verdict.valid))
        now = time.time()
        for sensor_id in set(verdict.sensor_ids):
            metrics.sensor_last_reading.labels(sensor_id).set(now)
        failed = Counter(reason.check for _, d in verdict.invalid for reason in d.reasons)
        for check, n in failed.items():
            metrics.readings_invalid.labels(check).inc(n)
        metrics.records_produced.labels(NAME, topics.valid_readings).inc(len(verdict.valid))
        metrics.records_produced.labels(NAME, topics.dead_letter).inc(len(verdict.invalid))


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    profile = load_profile(settings.profile_path)
    validator = ReadingValidator(
        profile,
        max_message_bytes=settings.max_message_bytes,
        dedup_capacity=settings.dedup_capacity,
    )
    await run_consumer_service(
        NAME,
        settings,
        lambda topics: [topics.raw_readings],
        lambda ctx: ValidatorHandler(ctx, validator, settings.validator_batches_in_flight),
        stop=stop,
    )


if __name__ == "__main__":
    service_main(NAME, run)
