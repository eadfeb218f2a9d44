"""When a consumer counts as stuck (driftline.streaming.stuck_consumer), without a broker."""

from __future__ import annotations

from aiokafka import TopicPartition

from driftline.streaming.stuck_consumer import StuckWatch, waiting

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_due_only_after_the_whole_quiet_period_and_reset_by_movement() -> None:
    clock = Clock()
    watch = StuckWatch(60, clock)
    clock.now += 59.9
    assert not watch.due()
    clock.now += 0.1
    assert watch.due() and watch.idle_seconds() == 60
    watch.moved()
    assert not watch.due() and watch.idle_seconds() == 0
    clock.now += 61
    assert watch.due()


def test_waiting_counts_records_past_each_position() -> None:
    assert waiting({A: 10, B: 5}, {A: 10, B: 5}) == 0
    assert waiting({A: 10, B: 5}, {A: 7, B: 5}) == 3
    # A position past the log's end (a log that lost records) waits for nothing there.
    assert waiting({A: 10, B: 5}, {A: 12, B: 1}) == 4


def test_an_unknown_position_counts_the_whole_partition() -> None:
    assert waiting({A: 10, B: 0}, {A: None, B: None}) == 10
    assert waiting({A: 10}, {}) == 10
