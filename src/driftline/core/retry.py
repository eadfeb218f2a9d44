"""Every "try again until it works or we stop" loop of Driftline, on tenacity.

A caller names what failures are worth retrying, what to do with each one (log it, mark a
health check failed) and how long to wait; ``retry`` does the loop. The wait is cut short
when the caller stops, and nothing is tried once it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential
from tenacity.wait import wait_base

from driftline.core.backoff import pause

T = TypeVar("T")

# Capped exponential backoff: 0.2 s, 0.4 s, ... up to 10 s between tries.
BACKOFF = wait_exponential(multiplier=0.2, max=10.0)


async def retry(
    action: Callable[[], Awaitable[T]],
    *,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    on_failure: Callable[[BaseException, float], object],
    stop: asyncio.Event | None = None,
    stopped: Callable[[], bool] | None = None,
    wait: wait_base = BACKOFF,
) -> tuple[T] | None:
    """Await ``action`` until it returns (its result, boxed) or the caller stops (None).

    A ``retry_on`` failure is passed to ``on_failure`` with the seconds until the next try,
    then waited out; any other exception propagates. Stopping is ``stop`` being set (which
    also cuts the wait short) or ``stopped()`` turning true, checked before each try and
    after each failure.
    """

    def is_stopped(_: object = None) -> bool:
        return (stop is not None and stop.is_set()) or (stopped is not None and stopped())

    def failed(state: RetryCallState) -> None:
        if state.outcome is not None and (exc := state.outcome.exception()) is not None:
            on_failure(exc, wait(state))

    async def sleep(seconds: float) -> None:
        if stop is None:
            await asyncio.sleep(seconds)
        else:
            await pause(stop, seconds)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=wait,
        stop=is_stopped,
        sleep=sleep,
        after=failed,
        retry_error_callback=lambda _: None,
    ):
        with attempt:
            if is_stopped():
                return None
            return (await action(),)
    return None
