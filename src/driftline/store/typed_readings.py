"""The key fields of a batch's readings in the usual shape, decoded by msgspec into small typed
records: no dict per document, no float object per measurement, and the strict JSON rules
(``strict_json.load_json``) settled with counts over the whole batch instead of re-encoding
every document.

The usual shape is a JSON object of ``sensor_id`` and ``ts`` (strings), ``values`` (an object
of numbers), and optionally ``seq`` (an integer within 0 and 2**63 - 1, or null) and
``label`` (a 64-bit integer or null), nothing else. msgspec checks that shape, and UTF-8 and
the JSON grammar, in C; what ``load_json`` adds is then settled for the batch:

- no escape (a ``\\u`` could spell a colon): one search over the joined bytes;
- no key twice in an object: the decoders keep the last of a repeated key, so the raw bytes
  hold more colons than one per key plus those inside the decoded strings exactly when some
  key repeats;
- integers within 64 bits: ``seq`` and ``label`` by their type's bounds; a measurement as large
  as ``BIG_FLOAT`` may be an integer literal beyond them, and is left to the other path;
- at most ``MAX_BYTES``; the depth is the shape's, 2.

A message outside the shape or these checks is left to the caller (``rest``), which reads it
as ``BatchKeys`` always has: every field of a message read here is the one ``load_json`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Annotated, Any

import msgspec
import numpy as np
from msgspec import UNSET, Meta, UnsetType

from driftline.validation.strict_json import BIG_FLOAT, INT_MAX, INT_MIN, MAX_BYTES

_CHUNK = 16  # documents decoded by one map(); a chunk with one outside the shape goes one by one


class UsualReading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    sensor_id: str
    ts: str
    values: dict[str, float]  # ints too (as floats); no bools, strings, null, NaN tokens
    seq: Annotated[int, Meta(ge=0, le=INT_MAX)] | None | UnsetType = UNSET
    label: Annotated[int, Meta(ge=INT_MIN, le=INT_MAX)] | None | UnsetType = UNSET


# Stands for a message decoded otherwise: no colon in its strings, seq and label null (two
# keys more than a missing one each), no values.
_OTHER = UsualReading(sensor_id="", ts="", values={}, seq=None, label=None)
_OTHER_KEYS = 5
_decode = msgspec.json.Decoder(UsualReading).decode
_get_values = attrgetter("values")


@dataclass(slots=True)
class TypedFields:
    """Per message of a batch: its raw ``sensor_id``, ``ts`` and ``seq`` (None when missing or
    null), and the indexes of the messages left to the caller (their fields here are
    placeholders)."""

    sensor_id: list[Any]
    ts: list[Any]
    seq: list[Any]
    rest: list[int]


def typed_fields(values: list[bytes | None]) -> TypedFields:
    docs, rest = _decode_all(values)
    if len(rest) < len(values):
        rest = sorted(set(rest) | _refused(values, docs, rest))
        for i in rest:
            docs[i] = _OTHER
    sensors = list(map(attrgetter("sensor_id"), docs))
    stamps = list(map(attrgetter("ts"), docs))
    seqs = list(map(attrgetter("seq"), docs))
    if UNSET in seqs:
        seqs = [None if q is UNSET else q for q in seqs]
    return TypedFields(sensors, stamps, seqs, rest)


def _decode_all(values: list[bytes | None]) -> tuple[list[UsualReading], list[int]]:
    """Each value decoded to the usual shape, ``_OTHER`` for those that are not (listed)."""
    docs: list[UsualReading] = []
    rest: list[int] = []
    for at in range(0, len(values), _CHUNK):
        chunk = values[at : at + _CHUNK]
        try:
            docs += list(map(_decode, chunk))  # type: ignore[arg-type]
        except (msgspec.DecodeError, ValueError, TypeError):  # ValueError: bad UTF-8
            # One of the chunk is not the usual shape: decode it reading by reading.
            for i, value in enumerate(chunk, at):
                try:
                    docs.append(_decode(value))  # type: ignore[arg-type]
                except (msgspec.DecodeError, ValueError, TypeError):
                    docs.append(_OTHER)
                    rest.append(i)
    return docs, rest


def _refused(values: list[bytes | None], docs: list[UsualReading], rest: list[int]) -> set[int]:
    """The decoded documents ``load_json`` might refuse though msgspec read them."""
    raws: list[bytes] = list(values)  # type: ignore[arg-type]
    for i in rest:
        raws[i] = b""
    refused: set[int] = set()
    joined = b"".join(raws)
    if b"\\" in joined:  # one byte: memchr; then the few documents with a backslash
        refused.update(i for i, raw in enumerate(raws) if b"\\" in raw)
    if max(map(len, raws)) > MAX_BYTES:
        refused.update(i for i, raw in enumerate(raws) if len(raw) > MAX_BYTES)
    measured = list(map(_get_values, docs))
    sizes = np.fromiter(map(len, measured), dtype=np.int64, count=len(docs))
    numbers = np.fromiter(chain.from_iterable(map(dict.values, measured)), dtype=np.float64)
    with np.errstate(invalid="ignore"):
        big = ~(np.abs(numbers) < BIG_FLOAT)
    if big.any():
        rows = np.repeat(np.arange(len(docs)), sizes)
        refused.update(np.unique(rows[big]).tolist())
    colons = joined.count(b":")
    if refused:  # counted without them: an escape may spell a colon
        docs = list(docs)
        for i in refused:
            colons -= raws[i].count(b":")
            raws[i], docs[i], measured[i] = b"", _OTHER, _OTHER.values
    expected = _colons(docs, measured, len(rest) + len(refused), names=False)
    if colons != expected and colons != expected + _name_colons(measured):
        # Some document repeats a key: find which.
        refused.update(
            i
            for i, raw in enumerate(raws)
            if raw and raw.count(b":") != _colons([docs[i]], [measured[i]], 0)
        )
    return refused


def _colons(
    docs: list[UsualReading], measured: list[dict[str, float]], others: int, names: bool = True
) -> int:
    """The colons of ``docs`` written without a repeated key (``others`` of them ``_OTHER``):
    one per key, and those inside the strings (sensor id, time, and with ``names`` the
    measurement names: so rare that the batch counts them only when the rest do not add up)."""
    n = len(docs)
    keys = 3 * n + (n - list(map(attrgetter("seq"), docs)).count(UNSET))
    keys += n - list(map(attrgetter("label"), docs)).count(UNSET) + sum(map(len, measured))
    inside = "".join(map(attrgetter("sensor_id"), docs)).count(":")
    inside += "".join(map(attrgetter("ts"), docs)).count(":")
    if names:
        inside += _name_colons(measured)
    return keys + inside - others * _OTHER_KEYS


def _name_colons(measured: list[dict[str, float]]) -> int:
    return "".join(chain.from_iterable(measured)).count(":")
