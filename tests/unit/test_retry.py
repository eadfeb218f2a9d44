"""driftline.core.retry: the one retry loop (tenacity) every service uses."""

from __future__ import annotations

import asyncio

import pytest
from tenacity import wait_fixed

from driftline.core.retry import BACKOFF, retry


async def test_retries_the_named_failures_until_the_action_succeeds() -> None:
    calls: list[int] = []
    seen: list[tuple[str, float]] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise OSError(f"down {len(calls)}")
        return "up"

    result = await retry(
        flaky,
        retry_on=OSError,
        on_failure=lambda exc, delay: seen.append((str(exc), delay)),
        wait=wait_fixed(0.001),
    )
    assert result == ("up",)
    assert seen == [("down 1", 0.001), ("down 2", 0.001)]


async def test_other_failures_propagate_at_once() -> None:
    async def broken() -> None:
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        await retry(broken, retry_on=OSError, on_failure=lambda *_: None)


async def test_stopping_ends_the_wait_and_tries_nothing_more() -> None:
    stop = asyncio.Event()
    calls: list[int] = []

    async def down() -> None:
        calls.append(1)
        stop.set()
        raise OSError("down")

    seen: list[float] = []
    result = await retry(down, retry_on=OSError, on_failure=lambda _, d: seen.append(d), stop=stop)
    assert result is None
    assert calls == [1]
    assert seen == [0.2]  # the failure is still reported, with the backoff's first wait


async def test_nothing_is_tried_once_stopped() -> None:
    stop = asyncio.Event()
    stop.set()

    async def never() -> None:
        raise AssertionError("tried after stop")

    assert await retry(never, retry_on=OSError, on_failure=lambda *_: None, stop=stop) is None


def test_the_backoff_doubles_from_a_fifth_of_a_second_up_to_ten() -> None:
    from tenacity import RetryCallState

    def delay(n: int) -> float:
        state = RetryCallState(None, None, (), {})
        state.attempt_number = n
        return BACKOFF(state)

    assert [delay(n) for n in (1, 2, 3, 4)] == [0.2, 0.4, 0.8, 1.6]
    assert delay(20) == 10.0
