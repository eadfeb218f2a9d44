"""Batches in flight publish in poll order: each task waits for the one started before it,
whatever that one's fate (done, failed, cancelled)."""

from __future__ import annotations

import asyncio

import pytest

from driftline.streaming.batch_order import earlier_batches_done, start_after


async def publishing(name: str, out: list[str], hold: asyncio.Event | None = None) -> str:
    if hold is not None:
        await hold.wait()  # e.g. a first attempt that failed and waits out its backoff
    await earlier_batches_done()
    out.append(name)
    return name


async def test_a_later_batch_waits_for_the_one_before_it() -> None:
    out: list[str] = []
    hold = asyncio.Event()
    first = start_after(None, publishing("first", out, hold))
    second = start_after(first, publishing("second", out))
    third = start_after(second, publishing("third", out))
    await asyncio.sleep(0.05)
    assert out == []  # the second and third are ready, the first is not
    hold.set()
    assert await asyncio.gather(first, second, third) == ["first", "second", "third"]
    assert out == ["first", "second", "third"]


async def test_without_a_batch_before_it_a_batch_goes_at_once() -> None:
    out: list[str] = []
    assert await start_after(None, publishing("alone", out)) == "alone"
    await earlier_batches_done()  # outside any batch's task: nothing to wait for
    assert out == ["alone"]


@pytest.mark.parametrize("fate", ["failed", "cancelled"])
async def test_a_batch_before_that_ends_badly_releases_the_next(fate: str) -> None:
    out: list[str] = []

    async def ends_badly() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("its handling gave up")

    first = start_after(None, ends_badly() if fate == "failed" else asyncio.sleep(60))
    second = start_after(first, publishing("second", out))
    await asyncio.sleep(0.01)
    assert out == []
    if fate == "cancelled":
        first.cancel()
    assert await asyncio.wait_for(second, 5) == "second"
    assert first.cancelled() if fate == "cancelled" else isinstance(first.exception(), RuntimeError)
