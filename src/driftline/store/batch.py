"""Key columns of a whole batch of messages at once: the same values ``raw_rows.key_columns``
gives each message, with as little Python per message as its rules allow.

Each payload is decoded once, by orjson. What ``strict_json.load_json`` adds to orjson (no key
twice in an object, integers within 64 bits, nesting at most 64, at most 16 MiB) is checked
for the whole batch with byte counts done in C, not by walking each document:

- a repeated key writes more ``:`` than the parsed objects hold, so the colons of the raw
  bytes (no ``\\u`` escape in them, which could spell one) are as many as orjson writes again
  for the parsed documents exactly when no document repeats a key;
- an integer beyond 64 bits has 19 digits or more in a row;
- nesting deeper than 64 needs more than 64 brackets.

A message these counts cannot clear (and one orjson refuses, e.g. for NaN) takes the message's
own path, ``key_columns``; so does a timestamp in any form but the canonical
``YYYY-MM-DDTHH:MM:SS.ffffffZ``, whose reading-id stamp and column text are slices of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from hashlib import blake2b
from typing import Any

import orjson

from driftline.store.rows import key_columns, message_id, naive_utc
from driftline.streaming.messages import Message
from driftline.validation.parsing import (
    PLAUSIBLE_FROM,
    PLAUSIBLE_UNTIL,
    parse_timestamp,
    valid_sensor_id,
)
from driftline.validation.strict_json import MAX_BYTES, MAX_DEPTH

_CANONICAL_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-9]{2}:[0-9]{2}\.[0-9]{6}Z"
)
# The canonical form sorts as time does: the plausible range as text.
_FROM = PLAUSIBLE_FROM.isoformat(timespec="microseconds").replace("+00:00", "Z")
_UNTIL = PLAUSIBLE_UNTIL.isoformat(timespec="microseconds").replace("+00:00", "Z")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19  # after _DIGITS_AS_ZERO: 19 digits in a row
_SEP = b"\x00"  # never in what orjson accepts (a raw control byte), so it parts documents
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{[\x00")
_SEQ_LIMIT = 2**63
_CACHE_LIMIT = 100_000  # sensor ids, keys remembered (a hostile stream may send many)
_CACHED_KEY_BYTES = 256


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
    """Computes ``BatchKeyColumns``; remembers valid sensor ids and the hash state of each key
    across batches (both bounded)."""

    def __init__(self) -> None:
        self._valid_sensors: set[str] = set()
        self._key_hashes: dict[bytes | None, Any] = {}

    def columns(self, messages: list[Message]) -> BatchKeyColumns:
        n = len(messages)
        values = [m.value for m in messages]
        out = BatchKeyColumns(
            self._message_ids(messages), [None] * n, [None] * n, [None] * n, [None] * n
        )
        docs, own_path = _decode(values)
        self._fill(out, docs)
        for i in own_path:
            k = key_columns(messages[i])
            out.reading_id[i] = k.reading_id
            out.sensor_id[i] = k.sensor_id
            out.event_ts[i] = None if k.event_ts is None else timestamp_text(k.event_ts)
            out.seq[i] = k.seq
        return out

    def _message_ids(self, messages: list[Message]) -> list[str]:
        """``message_id`` of each message: the key's part hashed once per distinct key."""
        hashes = self._key_hashes
        if len(hashes) > _CACHE_LIMIT:
            hashes.clear()
        out = []
        for m in messages:
            key, value = m.key, m.value
            h = hashes.get(key)
            if h is None:
                if key is not None and len(key) > _CACHED_KEY_BYTES:
                    out.append(message_id(key, value))
                    continue
                h = hashes[key] = blake2b(digest_size=16)
                h.update(b"-" if key is None else b"k" + len(key).to_bytes(8, "big") + key)
            h = h.copy()
            if value is None:
                h.update(b"-")
            else:
                h.update(b"v")
                h.update(value)
            out.append(h.hexdigest())
        return out

    def _fill(self, out: BatchKeyColumns, docs: list[tuple[int, dict[str, Any]]]) -> None:
        """The key columns of documents ``load_json`` reads as ``orjson`` does (the rules of
        ``raw_rows.key_columns``, inlined: this loop is most of the Python per message)."""
        reading_ids, sensors, events, seqs = out.reading_id, out.sensor_id, out.event_ts, out.seq
        valid_sensors = self._valid_sensors
        canonical, from_iso, digest = _CANONICAL_TS.fullmatch, datetime.fromisoformat, blake2b
        for i, doc in docs:
            get = doc.get
            sensor = get("sensor_id")
            if type(sensor) is str and (sensor in valid_sensors or self._new_sensor(sensor)):
                sensors[i] = sensor
            else:
                sensor = None
            seq = get("seq")
            seq_ok = seq is None or (type(seq) is int and 0 <= seq < _SEQ_LIMIT)
            if seq_ok:
                seqs[i] = seq
            ts = get("ts")
            stamp = None
            if type(ts) is str and canonical(ts):
                try:
                    from_iso(ts)  # a real date and time (no 31 April)
                except ValueError:
                    pass
                else:
                    stamp = ts[:26] + "+00:00"  # as_utc(ts).isoformat(timespec="microseconds")
                    if _FROM <= ts <= _UNTIL:
                        events[i] = ts[:10] + " " + ts[11:26]
            elif (parsed := parse_timestamp(ts)) is not None:
                stamp = parsed.isoformat(timespec="microseconds")
                if PLAUSIBLE_FROM <= parsed <= PLAUSIBLE_UNTIL:
                    events[i] = timestamp_text(parsed)
            if sensor is not None and stamp is not None and seq_ok:
                reading_ids[i] = digest(
                    f"{sensor}|{stamp}|{seq}".encode(), digest_size=16
                ).hexdigest()

    def _new_sensor(self, sensor: str) -> bool:
        if valid_sensor_id(sensor) is None:
            return False
        if len(self._valid_sensors) >= _CACHE_LIMIT:
            self._valid_sensors.clear()
        self._valid_sensors.add(sensor)
        return True


def _decode(values: list[bytes | None]) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
    """(index, document) of the objects the batch checks clear, and the indexes of the
    messages that take their own path. Anything else (no value, a JSON value that is not an
    object) has no key columns, whether or not it is strict JSON."""
    loads, error = orjson.loads, orjson.JSONDecodeError
    parsed: list[tuple[int, dict[str, Any]]] = []
    own_path: list[int] = []
    for i, value in enumerate(values):
        if value is None:
            continue
        try:
            doc = loads(value)
        except error:
            own_path.append(i)
            continue
        if type(doc) is dict:
            parsed.append((i, doc))
    if not parsed:
        return parsed, own_path
    suspect = _suspects([values[i] or b"" for i, _ in parsed], [doc for _, doc in parsed])
    if suspect:
        own_path.extend(parsed[j][0] for j in suspect)
        parsed = [p for j, p in enumerate(parsed) if j not in suspect]
    return parsed, own_path


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
    if suspect:
        joined = _SEP.join(raws[j] for j in clean)
    try:
        rewritten = orjson.dumps([docs[j] for j in clean]).count(b":")
    except orjson.JSONEncodeError:
        rewritten = -1
    if joined.count(b":") != rewritten:
        # Some document repeats a key (or could not be written again): find which.
        suspect.update(j for j in clean if _colons_differ(raws[j], docs[j]))
    return suspect


def _colons_differ(raw: bytes, doc: dict[str, Any]) -> bool:
    try:
        return raw.count(b":") != orjson.dumps(doc).count(b":")
    except orjson.JSONEncodeError:
        return True
