"""``streaming.kafka.ends``: what a batch's commit moves each partition's offset to."""

from __future__ import annotations

from driftline.streaming.kafka import ends
from driftline.streaming.messages import Message, Polled


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


def test_a_polled_batch_answers_with_its_own_ends_and_a_slice_of_it_is_found_again() -> None:
    messages = [Message("raw", 0, 5, b"k", b"v"), Message("raw", 1, 9, b"k", b"v")]
    # Ends the messages alone would not give: the poll's word is taken (O(partitions)).
    polled = Polled(messages, {("raw", 0): 6, ("raw", 1): 10, ("raw", 2): 4})
    assert ends(polled) == {("raw", 0): 6, ("raw", 1): 10, ("raw", 2): 4}
    assert list(polled) == messages
    half = polled[:1]  # what the error policy hands on when it splits a batch
    assert type(half) is list
    assert ends(half) == {("raw", 0): 6}


def test_a_message_is_a_tuple_with_named_fields() -> None:
    m = Message("raw", 3, 7, b"pump-1", b"{}")
    assert (m.topic, m.partition, m.offset, m.key, m.value, m.timestamp_ms) == (
        "raw",
        3,
        7,
        b"pump-1",
        b"{}",
        None,
    )
    assert m == Message("raw", 3, 7, b"pump-1", b"{}", None)
    assert m.source.offset == 7
    assert m.key_text == "pump-1"
