"""The services' garbage-collector tuning (``service_main.tune_gc``): the batches in flight,
allocated and freed batch after batch, set off no young collection; garbage that cannot be freed
by reference counting (cycles) still is collected."""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from driftline.streaming.messages import Message
from driftline.streaming.service_main import tune_gc


@dataclass
class Record:  # stands for aiokafka's ConsumerRecord: a tracked object per record
    offset: int
    value: bytes


@pytest.fixture
def tuned() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def young_collections() -> int:
    return int(gc.get_stats()[0]["collections"])


def test_batches_in_flight_set_off_no_young_collection(tuned: None) -> None:
    batch = 2_000
    tune_gc(batch)
    assert gc.get_threshold()[0] == 10 * batch
    before = young_collections()
    in_flight: deque[tuple[list[Record], list[Message]]] = deque()
    for b in range(30):  # two batches being handled while the next is polled, as in runtime
        if len(in_flight) == 2:
            in_flight.popleft()
        records = [Record(i, b"{}") for i in range(b * batch, (b + 1) * batch)]
        in_flight.append((records, [Message("raw", 0, r.offset, b"k", r.value) for r in records]))
    assert young_collections() == before


def test_cycles_are_still_collected(tuned: None) -> None:
    tune_gc(1_000)
    before = young_collections()
    for _ in range(30_000):  # cycles: reference counting never frees them
        a: list[object] = []
        a.append(a)
    assert young_collections() > before
