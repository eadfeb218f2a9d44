"""Predictions to the predictions topic, off the request path.

Scoring hands records to ``publish`` and goes on; a background thread with its own event loop
sends them with one aiokafka producer. The queue is bounded: when the broker cannot keep up,
the newest predictions are dropped, counted (``driftline_serving_predictions_dropped_total``)
and logged, never blocking an answer. Predictions are monitoring data; the answer itself has
already reached the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from driftline.core.records import Prediction
from driftline.core.settings import Settings
from driftline.core.topics import Topics
from driftline.serving import metrics as serving_metrics

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)


class PredictionPublisher:
    def __init__(self, settings: Settings, max_queued: int = 100_000) -> None:
        self.settings = settings
        self.topic = Topics(settings.topic_prefix).predictions
        self.max_queued = max_queued
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[list[Prediction] | None] = asyncio.Queue()
        self._queued = 0  # readings waiting; read and written from both threads, approximately
        self._thread = threading.Thread(target=self._run, name="prediction-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def publish(self, predictions: list[Prediction]) -> None:
        if self._queued + len(predictions) > self.max_queued:
            serving_metrics.predictions_dropped.inc(len(predictions))
            log.warning("prediction queue full: dropped %d predictions", len(predictions))
            return
        self._queued += len(predictions)
        self._loop.call_soon_threadsafe(self._queue.put_nowait, predictions)

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
            self._thread.join(timeout)

    def _run(self) -> None:
        self._loop.run_until_complete(self._send_all())

    async def _send_all(self) -> None:
        from tenacity import wait_fixed

        from driftline.core.retry import retry
        from driftline.streaming.kafka import ensure_topics, make_producer

        async def connect() -> AIOKafkaProducer:
            await ensure_topics(self.settings, [self.topic])
            producer = make_producer(self.settings, acks=1)
            await producer.start()
            return producer

        def failed(exc: BaseException, delay: float) -> None:
            log.error(
                "cannot reach the broker for %s; retrying in %.0f s",
                self.topic,
                delay,
                exc_info=exc,
            )

        connected = await retry(connect, retry_on=Exception, on_failure=failed, wait=wait_fixed(5))
        if connected is None:  # not stoppable: only a failure other than an Exception ends it
            return
        (producer,) = connected
        try:
            while (batch := await self._queue.get()) is not None:
                self._queued -= len(batch)
                for prediction in batch:
                    try:
                        await producer.send(
                            self.topic, prediction.to_bytes(), key=prediction.sensor_id.encode()
                        )
                    except Exception:
                        serving_metrics.predictions_dropped.inc()
                        log.exception("publishing a prediction failed")
                    else:
                        serving_metrics.predictions_published.inc()
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
