"""``streaming.kafka.ends``: what a batch's commit moves each partition's offset to."""

from __future__ import annotations

from driftline.streaming.kafka import ends
from driftline.streaming.messages import Message


def test_each_partition_ends_past_its_highest_offset_in_the_batch() -> None:
    batch = [
        Message("raw", 0, 5, b"k", b"v"),
        Message("raw", 1, 9, b"k", b"v"),
        Message("raw", 0, 7, b"k", b"v"),
        Message("raw", 0, 6, b"k", b"v"),  # out of order (a batch split and put together)
        Message("dlq", 0, 2, None, b"v"),
    ]
    assert ends(batch) == {("raw", 0): 8, ("raw", 1): 10, ("dlq", 0): 3}
    assert ends([]) == {}
