"""Capped exponential backoff, and a sleep that a stop event cuts short."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.2
    maximum: float = 10.0
    _delay: float = field(default=0.0, init=False)

    def next(self) -> float:
        self._delay = min(self.maximum, self._delay * 2 if self._delay else self.initial)
        return self._delay


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
