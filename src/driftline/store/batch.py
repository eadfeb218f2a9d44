"""Key columns of a whole batch of messages at once: the same values ``raw_rows.key_columns``
gives each message, with as little Python per message as its rules allow.

Each payload is decoded once. Readings in the usual shape are decoded by msgspec into small
typed records and checked against the strict JSON rules as a batch (``typed_readings``); the
others by orjson, and what ``strict_json.load_json`` adds to orjson (no key twice in an object,
integers within 64 bits, nesting at most 64, at most 16 MiB) is checked for them with byte
counts done in C, not by walking each document:

- a repeated key writes more ``:`` than the parsed objects hold, so the colons of the raw
  bytes (no ``\\u`` escape in them, which could spell one) are as many as orjson writes again
  for the parsed documents exactly when no document repeats a key;
- an integer beyond 64 bits has 19 digits or more in a row;
- nesting deeper than 64 needs more than 64 brackets.

A message these counts cannot clear (and one orjson refuses, e.g. for NaN) takes the message's
own path, ``key_columns``. The fields are then gathered a column at a time (one pass each, no
object per reading); a timestamp in the canonical ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` form gives
the reading-id stamp and the column text as slices of it (``batch_time``), any other form is
parsed on its own.

The caches are shared by the threads of the batches in flight: an entry is added only once
it is whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from hashlib import blake2b
from operator import add, itemgetter, methodcaller
from typing import Any

import orjson

from driftline.store import batch_time
from driftline.store.rows import key_columns, message_id, message_id_key_part, naive_utc
from driftline.store.typed_readings import typed_fields
from driftline.streaming.messages import Message
from driftline.validation.parsing import (
    PLAUSIBLE_FROM,
    PLAUSIBLE_UNTIL,
    parse_timestamp,
    valid_sensor_id,
)
from driftline.validation.strict_json import MAX_BYTES, MAX_DEPTH

_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # after _DIGITS_AS_ZERO: 19 digits in a row
_SEP = b"\x00"  # never in what orjson accepts (a raw control byte), so it parts documents
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{[\x00")
_SEQ_LIMIT = 2**63
_CACHE_LIMIT = 100_000  # sensor ids, keys remembered (a hostile stream may send many)
_CACHED_KEY_BYTES = 256
_CHUNK = 32  # messages decoded by one map(); a chunk with a message orjson refuses goes one by one
_KEY, _VALUE = itemgetter(3), itemgetter(4)  # Message.key, Message.value
_HEX = methodcaller("hexdigest")
_digest = partial(blake2b, digest_size=16)


@dataclass(slots=True)
class BatchKeyColumns:
    """Per message of a batch, in order: its identity and key columns. ``event_ts`` is the
    column's text (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``, as SQLAlchemy writes DATETIME)."""

    message_id: list[str]
    reading_id: list[str | None]
    sensor_id: list[str | None]
    event_ts: list[str | None]
    seq: list[int | None]


def timestamp_text(ts: datetime) -> str:
    """A DATETIME column's text of ``ts`` (naive UTC, microseconds)."""
    return naive_utc(ts).strftime("%Y-%m-%d %H:%M:%S.%f")


class BatchKeys:
    """Computes ``BatchKeyColumns``; remembers valid sensor ids and what the message id hashes
    of each key across batches (both bounded)."""

    def __init__(self) -> None:
        self._valid_sensors: set[str] = set()
        self._key_heads: dict[bytes | None, bytes] = {}

    def columns(self, messages: list[Message]) -> BatchKeyColumns:
        values = [m.value for m in messages]
        fields = typed_fields(values)
        sensors, stamps, seqs = fields.sensor_id, fields.ts, fields.seq
        own_path: list[int] = []
        if fields.rest:  # the messages outside the usual shape: orjson's documents
            rest = fields.rest
            docs, own = _decode([values[i] for i in rest])
            for i, d in zip(rest, docs, strict=True):
                sensors[i], stamps[i], seqs[i] = d.get("sensor_id"), d.get("ts"), d.get("seq")
            own_path = [rest[j] for j in own]
        out = self._columns(sensors, stamps, seqs)
        out.message_id = self._message_ids(messages)
        for i in own_path:
            k = key_columns(messages[i])
            out.reading_id[i] = k.reading_id
            out.sensor_id[i] = k.sensor_id
            out.event_ts[i] = None if k.event_ts is None else timestamp_text(k.event_ts)
            out.seq[i] = k.seq
        return out

    def _message_ids(self, messages: list[Message]) -> list[str]:
        """``message_id`` of each message, hashed in one pass of C calls: the key's part and
        the value's hashed as one string are the same digest as ``message_id``'s two updates,
        and the key's part (with the value's marker) is built once per distinct key."""
        keys = list(map(_KEY, messages))
        values = list(map(_VALUE, messages))
        heads = list(map(self._key_heads.get, keys))
        if None in heads:
            heads = [
                self._key_head(k) if h is None else h for k, h in zip(keys, heads, strict=True)
            ]
        if None in values:  # a tombstone: no value marker
            return [
                message_id(k, v) if v is None else _digest(h + v).hexdigest()
                for k, h, v in zip(keys, heads, values, strict=True)
            ]
        return list(map(_HEX, map(_digest, map(add, heads, values))))

    def _key_head(self, key: bytes | None) -> bytes:
        """What ``message_id`` hashes of ``key``, and the marker of a value after it."""
        head = message_id_key_part(key) + b"v"
        if key is None or len(key) <= _CACHED_KEY_BYTES:
            if len(self._key_heads) > _CACHE_LIMIT:
                self._key_heads = {}
            self._key_heads[key] = head  # whole when shared (batches in flight: two threads)
        return head

    def _columns(
        self, sensor_values: list[Any], ts: list[Any], seq_values: list[Any]
    ) -> BatchKeyColumns:
        """The key columns of the fields of documents ``load_json`` reads (the rules of
        ``raw_rows.key_columns``; a missing field is None), a column at a time: the canonical
        timestamps checked and sliced as a column (``batch_time``); values of other forms
        take ``parse_timestamp`` one by one."""
        n = len(ts)
        sensors = self._sensor_column(sensor_values)
        seqs, seq_ok = _seq_column(seq_values)
        ok = batch_time.canonical(ts)
        stamps = batch_time.stamps(ts, ok)
        events = batch_time.event_texts(ts, ok)
        if not all(ok):
            for j in [j for j, (t, k) in enumerate(zip(ts, ok, strict=True)) if not k and t]:
                parsed = parse_timestamp(ts[j])
                if parsed is not None:
                    stamps[j] = parsed.isoformat(timespec="microseconds")
                    if PLAUSIBLE_FROM <= parsed <= PLAUSIBLE_UNTIL:
                        events[j] = timestamp_text(parsed)
        digest = blake2b
        if seq_ok is None:
            ids = [
                None
                if s is None or t is None
                else digest(f"{s}|{t}|{q}".encode(), digest_size=16).hexdigest()
                for s, t, q in zip(sensors, stamps, seqs, strict=True)
            ]
        else:
            ids = [
                None
                if s is None or t is None or not k
                else digest(f"{s}|{t}|{q}".encode(), digest_size=16).hexdigest()
                for s, t, q, k in zip(sensors, stamps, seqs, seq_ok, strict=True)
            ]
        return BatchKeyColumns([""] * n, ids, sensors, events, seqs)

    def _sensor_column(self, values: list[Any]) -> list[str | None]:
        valid = self._valid_sensors
        try:
            known = list(map(valid.__contains__, values))
        except TypeError:  # an unhashable value (a list, an object)
            known = [type(v) is str and v in valid for v in values]
        if all(known):
            return values
        out = list(values)
        for j in [j for j, k in enumerate(known) if not k]:
            v = values[j]
            if not (type(v) is str and self._new_sensor(v)):
                out[j] = None
        return out

    def _new_sensor(self, sensor: str) -> bool:
        if valid_sensor_id(sensor) is None:
            return False
        if len(self._valid_sensors) >= _CACHE_LIMIT:
            self._valid_sensors.clear()
        self._valid_sensors.add(sensor)
        return True


def _seq_column(values: list[Any]) -> tuple[list[int | None], list[bool] | None]:
    """The seq column, and per value whether it is a valid seq or none (``None``: all are)."""
    types = set(map(type, values))
    if types <= {int, type(None)}:
        ints = [v for v in values if v is not None] if type(None) in types else values
        if not ints or (min(ints) >= 0 and max(ints) < _SEQ_LIMIT):
            return values, None
    ok = [v is None or (type(v) is int and 0 <= v < _SEQ_LIMIT) for v in values]
    return [v if k else None for v, k in zip(values, ok, strict=True)], ok


_EMPTY: dict[str, Any] = {}


def _decode(values: list[bytes | None]) -> tuple[list[dict[str, Any]], list[int]]:
    """The document of each message the batch checks clear (an empty one for any other), and
    the indexes of the messages that take their own path. Anything else (no value, a JSON
    value that is not an object) has no key columns, whether or not it is strict JSON."""
    loads = orjson.loads
    decoded: list[Any] = []
    for at in range(0, len(values), _CHUNK):
        chunk = values[at : at + _CHUNK]
        try:
            decoded += list(map(loads, chunk))  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, TypeError):  # not JSON, or no value: one at a time
            decoded += map(_loads_or_none, chunk)
    own_path: list[int] = []
    if set(map(type, decoded)) == {dict}:
        docs: list[dict[str, Any]] = decoded
        parsed = range(len(docs))
    else:
        docs = [_EMPTY] * len(values)
        parsed = []  # type: ignore[assignment]
        for i, doc in enumerate(decoded):
            if type(doc) is dict:
                docs[i] = doc
                parsed.append(i)  # type: ignore[attr-defined]
            elif doc is _NOT_JSON:
                own_path.append(i)
    if not parsed:
        return docs, own_path
    suspect = _suspects([values[i] or b"" for i in parsed], [docs[i] for i in parsed])
    if suspect:
        docs = list(docs)
        for j in suspect:
            own_path.append(parsed[j])
            docs[parsed[j]] = _EMPTY
    return docs, own_path


_NOT_JSON = object()


def _loads_or_none(value: bytes | None) -> Any:
    """The value orjson reads, None for no value, ``_NOT_JSON`` if orjson refuses it."""
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _suspects(raws: list[bytes], docs: list[dict[str, Any]]) -> set[int]:
    """Indexes of the documents whose bytes ``load_json`` might refuse though orjson read them."""
    joined = _SEP.join(raws)
    suspect: set[int] = set()
    if max(map(len, raws)) > MAX_BYTES:
        suspect.update(j for j, raw in enumerate(raws) if len(raw) > MAX_BYTES)
    if b"\\" in joined:  # one byte: memchr; then the few documents with a backslash
        suspect.update(j for j, raw in enumerate(raws) if b"\\" in raw and b"\\u" in raw)
    if _LONG_NUMBER in joined.translate(_DIGITS_AS_ZERO):
        suspect.update(
            j for j, raw in enumerate(raws) if _LONG_NUMBER in raw.translate(_DIGITS_AS_ZERO)
        )
    brackets = joined.translate(None, _NOT_BRACKETS).split(_SEP)
    if max(map(len, brackets)) > MAX_DEPTH:
        suspect.update(j for j, b in enumerate(brackets) if len(b) > MAX_DEPTH)
    clean = [j for j in range(len(raws)) if j not in suspect] if suspect else range(len(raws))
    colons = joined.count(b":") - sum(raws[j].count(b":") for j in suspect)
    try:
        rewritten = orjson.dumps([docs[j] for j in clean] if suspect else docs).count(b":")
    except orjson.JSONEncodeError:
        rewritten = -1
    if colons != rewritten:
        # Some document repeats a key (or could not be written again): find which.
        suspect.update(j for j in clean if _colons_differ(raws[j], docs[j]))
    return suspect


def _colons_differ(raw: bytes, doc: dict[str, Any]) -> bool:
    try:
        return raw.count(b":") != orjson.dumps(doc).count(b":")
    except orjson.JSONEncodeError:
        return True
