"""Batches in flight that publish do so in the order they were polled, retries included.

With ``batches_in_flight`` above 1 the consumer loop handles the next batch while the previous
one's records are being acknowledged. If that previous batch fails (the broker timed out) and
is retried after a backoff, the next batch's records would land first, and one sensor's
readings would reach the topic out of order: the drift service's windows, bounded by event
time, would then close early. So the loop starts each batch's task with the task of the batch
before it (``start_after``), and a handler awaits ``earlier_batches_done()`` between its work
and its publish: the work still overlaps, the records go out in poll order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

# The task handling the batch polled just before the one the current task handles.
_previous: ContextVar[asyncio.Task[Any] | None] = ContextVar("previous_batch", default=None)


def start_after(
    previous: asyncio.Task[Any] | None, work: Coroutine[Any, Any, T]
) -> asyncio.Task[T]:
    """Run ``work`` in a task that ``earlier_batches_done`` holds until ``previous`` ends."""
    token = _previous.set(previous)
    try:
        return asyncio.create_task(work)  # the task takes a copy of the context as it is now
    finally:
        _previous.reset(token)


async def earlier_batches_done() -> None:
    """Return once every batch polled before this task's has been handled, or given up
    (stopping). Each task waits for the one before it, which waited for its own: in order."""
    previous = _previous.get()
    if previous is not None and not previous.done():
        await asyncio.wait({previous})
