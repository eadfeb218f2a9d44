"""The consumer loop's error policy, in one place: what a failing batch means, and what is done.

A handler that raises gets its batch again. The failure is **transient** when a dependency is
away: the exception is of a kind Kafka, the database or the network raise, and the service's
dependency checks, made right after it, fail too. Such a batch is retried with backoff for as
long as it takes, uncommitted: back-pressure, nothing skipped.

Any other failure is the batch's own (a message nobody foresaw). The batch is tried
``attempts`` times, then split in halves until the failing record is alone; that record,
after its own ``attempts``, is dead-lettered with check ``internal_error`` (the exception;
the dead letter's source is its topic, partition and offset), and the rest of the batch is
handled. Handlers are idempotent, so handling part of a batch again is safe. When
``MAX_POISON_STREAK`` records in a row have been dead-lettered with nothing handled in
between, the failure is taken as the service's, not the records' (a database refusing every
write while it answers its checks): the next record is retried until it goes through, a stall.

A batch that has failed ``stall_after`` times in a row (with no part of it handled meanwhile),
for whatever reason, marks the service **stalled**: not ready,
``driftline_stream_stalled{service}`` at 1, one log line, until the stream moves again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from driftline.core import metrics
from driftline.core.backoff import Backoff, pause
from driftline.core.errors import BrokerError, StoreUnavailable
from driftline.core.health import ServiceHealth
from driftline.core.records import FailedCheck
from driftline.streaming.dead_letters import dead_letter_bytes
from driftline.streaming.messages import Message

log = logging.getLogger(__name__)

# What a dependency that is away raises; whether it *is* away, the checks decide.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    KafkaError,
    BrokerError,
    StoreUnavailable,
    OSError,  # sockets, and requests' ConnectionError (MLflow, KFP) derives from it
    TimeoutError,
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeout,
)

MAX_POISON_STREAK = 3

Publish = Callable[[Sequence[tuple[str, bytes | None, bytes]]], Awaitable[None]]
Handle = Callable[[list[Message]], Awaitable[None]]
DependenciesUp = Callable[[], Awaitable[bool]]


@dataclass
class ErrorPolicy:
    service: str
    handle: Handle
    publish: Publish  # to Kafka with acks=all
    dead_letter_topic: str
    dependencies_up: DependenciesUp  # checks every dependency now; True if all answer
    stop: asyncio.Event
    health: ServiceHealth | None = None
    attempts: int = 3
    stall_after: int = 5
    backoff: Callable[[], Backoff] = Backoff
    _failures: int = 0  # failed attempts since the stream last moved
    _stalled: bool = False
    _poison_streak: int = 0  # records dead-lettered since a handle last succeeded

    async def run(self, batch: list[Message]) -> bool:
        """Handle ``batch`` under the policy: True once done, False if stopping first."""
        self._failures = 0
        return await self._attempt(batch, self.attempts)

    async def _attempt(self, batch: list[Message], attempts: int | None) -> bool:
        """Handle ``batch``, isolating after ``attempts`` failures (None: never)."""
        backoff = self.backoff()
        own_failures = 0
        while not self.stop.is_set():
            try:
                await self.handle(batch)
            except Exception as exc:  # the policy decides; nothing escapes the loop
                transient = await self._dependency_away(exc)
                if not transient:
                    own_failures += 1
                give_up = not transient and attempts is not None and own_failures >= attempts
                delay = 0.0 if give_up else backoff.next()
                self._failed(batch, exc, transient, delay)
                if give_up:
                    return await self._isolate(batch, exc)
                await pause(self.stop, delay)
            else:
                self._moved()  # also part of a batch being split: the stream moves
                return True
        return False

    async def _isolate(self, batch: list[Message], exc: Exception) -> bool:
        if len(batch) == 1:
            if self._poison_streak >= MAX_POISON_STREAK:
                log.error(
                    "%s: %d records in a row failed; not dead-lettering more: retrying this one",
                    self.service,
                    self._poison_streak,
                )
                return await self._attempt(batch, None)
            # Counted before publishing: a batch in flight beside this one sees it at once.
            self._poison_streak += 1
            return await self._dead_letter(batch[0], exc)
        half = len(batch) // 2
        for part in (batch[:half], batch[half:]):
            if not await self._attempt(part, self.attempts if len(part) == 1 else 1):
                return False
        return True

    async def _dependency_away(self, exc: Exception) -> bool:
        if not isinstance(exc, DEPENDENCY_ERRORS):
            return False
        try:
            return not await self.dependencies_up()
        except Exception:  # a check that cannot even run: take it as away
            return True

    def _failed(self, batch: list[Message], exc: Exception, transient: bool, delay: float) -> None:
        self._failures += 1
        kind = type(exc).__name__
        metrics.service_errors.labels(self.service, kind).inc()
        metrics.batch_retries.labels(self.service, "dependency" if transient else "record").inc()
        first = batch[0]
        log.error(
            "%s: batch of %d from %s[%d]@%d failed (%s: %s; %s); %s",
            self.service,
            len(batch),
            first.topic,
            first.partition,
            first.offset,
            kind,
            _text(exc),
            "a dependency is away" if transient else "every dependency answers",
            f"retrying in {delay:.1f}s" if delay else "isolating the record that fails",
        )
        if self._failures >= self.stall_after and not self._stalled:
            self._stalled = True
            reason = (
                f"stalled: batch at {first.topic}[{first.partition}]@{first.offset} failed "
                f"{self._failures} times ({kind}: {_text(exc)})"
            )
            metrics.stream_stalled.labels(self.service).set(1)
            if self.health is not None:
                self.health.stall(reason)
            log.error("%s %s", self.service, reason)

    def _moved(self) -> None:
        self._failures = 0
        self._poison_streak = 0
        if self._stalled:
            self._stalled = False
            metrics.stream_stalled.labels(self.service).set(0)
            if self.health is not None:
                self.health.resume()
            log.warning("%s: the stream moves again", self.service)

    async def _dead_letter(self, message: Message, exc: Exception) -> bool:
        reason = FailedCheck(
            check="internal_error",
            detail=f"{self.service} could not handle it: {type(exc).__name__}: {_text(exc)}",
        )
        value = dead_letter_bytes(message, self.service, [reason])
        log.error(
            "%s: dead-lettering %s[%d]@%d after %d failed attempts (%s: %s)",
            self.service,
            message.topic,
            message.partition,
            message.offset,
            self.attempts,
            type(exc).__name__,
            _text(exc),
        )
        backoff = self.backoff()
        while not self.stop.is_set():
            try:
                await self.publish([(self.dead_letter_topic, message.key, value)])
            except Exception as publish_exc:  # the broker away: wait for it like any batch
                log.warning("%s: dead letter not published (%s)", self.service, publish_exc)
                await pause(self.stop, backoff.next())
                continue
            metrics.poison_records.labels(self.service).inc()
            return True
        return False


def _text(exc: BaseException) -> str:
    """An exception's message, bounded, and encodable whatever it quotes."""
    return str(exc)[:300].encode("utf-8", "backslashreplace").decode("utf-8")
