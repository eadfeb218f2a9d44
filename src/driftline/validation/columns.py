"""A micro-batch of raw readings decoded once into columns, for the validator's hot path.

Almost every message on the raw topic is a plain reading in the canonical shape: a JSON object
of ``sensor_id``, ``ts`` (UTC, microseconds, ``Z``), ``seq``, ``values`` (a float for every
measurement of the profile) and ``label``. ``decode_columns`` recognises those with one
``orjson.loads`` and a few type tests each, and gathers their fields into arrays: timestamps
parsed, measurement values stacked and reading ids hashed batch-wise, with no per-reading
``datetime``, ``ParsedReading`` or pydantic object. Every other message (not JSON, another
shape, an integer where a float is usual, a timestamp in any other spelling, anything the
strict JSON rules might object to) is marked ``slow``: the caller parses it with
``driftline.parsing.parse_reading``, the reference, which says what is wrong with it.

A fast row is one that ``parse_reading`` would accept without a problem, with the same
sensor, time, sequence number, values and reading id: ``tests/unit/test_reading_columns.py``
holds the two to that on the fuzz corpus and generated batches.

``valid_payload`` turns a fast row that passed every check into its ``ValidReading`` JSON
(format v1, unchanged) by splicing the reading id into the original bytes: same fields, same
values, so ``ValidReading.model_validate_json`` reads the same record as from
``ValidReading.to_bytes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from msgspec import UNSET, Meta, UnsetType

from driftline.validation.parsing import MAX_SENSOR_ID
from driftline.validation.strict_json import BIG_FLOAT

_EPOCH_NS_MIN = 0  # 1970-01-01: parse_reading's PLAUSIBLE_FROM
_EPOCH_NS_MAX = int(np.datetime64("2200-01-01T00:00:00", "ns").astype(np.int64))
_STAMP_LENGTH = len("2025-03-14T09:26:53.589000Z")


def canonical_struct(features: list[str]) -> type[msgspec.Struct]:
    """The canonical shape of a reading of ``features``, as msgspec decodes and type-checks it
    in C: every measurement once and nothing else. Values may be ints here; the decoder sends
    a row with any int to the reference."""
    values = msgspec.defstruct(
        "CanonicalValues",
        [(f"m{j}", int | float) for j in range(len(features))],
        rename={f"m{j}": name for j, name in enumerate(features)},
        forbid_unknown_fields=True,
    )
    return msgspec.defstruct(
        "CanonicalReading",
        [
            ("sensor_id", Annotated[str, Meta(min_length=1, max_length=MAX_SENSOR_ID)]),
            ("ts", Annotated[str, Meta(min_length=_STAMP_LENGTH, max_length=_STAMP_LENGTH)]),
            ("values", values),
            ("seq", Annotated[int, Meta(ge=0, le=2**63 - 1)] | None | UnsetType, UNSET),
            ("label", Literal[0, 1] | None | UnsetType, UNSET),
        ],
        kw_only=True,
        forbid_unknown_fields=True,
    )


@dataclass
class DecodedBatch:
    """Columns of a batch's fast rows; ``slow`` marks the rows left to ``parse_reading``."""

    slow: np.ndarray  # bool (n,)
    sensor_id: list[str | None]  # None on slow rows
    ts: np.ndarray  # int64 ns since the epoch, fast rows only meaningful
    seq: list[int | None]
    label: list[int | None]
    values: np.ndarray  # (n, measurements) float64
    reading_id: list[str | None]  # None on slow rows
    missing: list[bytes]  # per fast row: the JSON of the optional fields it lacks (",")


class ColumnDecoder:
    def __init__(self, features: list[str], max_bytes: int) -> None:
        self.features = features
        self.max_bytes = max_bytes
        # Colons of a canonical payload besides one per key: the measurement names' and the
        # timestamp's two.
        self._colons = sum(f.count(":") for f in features) + 2
        self._sensor_ok: dict[str, bool] = {}
        self._decoder = msgspec.json.Decoder(canonical_struct(features))

    def decode(self, raws: Sequence[bytes | None]) -> DecodedBatch:
        n, width = len(raws), len(self.features)
        slow = np.zeros(n, dtype=bool)
        sensor: list[str | None] = [None] * n
        stamps: list[str] = ["1970-01-01T00:00:00.000000"] * n
        seqs: list[int | None] = [None] * n
        labels: list[int | None] = [None] * n
        zeros = (0.0,) * width
        rows: list[tuple[float, ...]] = [zeros] * n
        missing: list[bytes] = [b""] * n
        decode, max_bytes = self._decoder.decode, self.max_bytes
        astuple, nf, colons = msgspec.structs.astuple, width, self._colons
        sensor_ok = self._sensor_ok
        odd: list[int] = []  # off the canonical shape: parse_reading's
        for i, raw in enumerate(raws):
            # A tombstone, an oversized or non-object message (a BOM too), an escape: the
            # reference says what is wrong, if anything.
            if raw is None or len(raw) > max_bytes or raw[:1] != b"{" or b"\\" in raw:
                odd.append(i)
                continue
            try:
                doc: Any = decode(raw)  # rejects invalid UTF-8, NaN tokens, wrong types, extras
            except (msgspec.DecodeError, ValueError):
                odd.append(i)
                continue
            name, ts, seq, label = doc.sensor_id, doc.ts, doc.seq, doc.label
            keys = 3 + (seq is not UNSET) + (label is not UNSET)
            # No key written twice (the decoder keeps the last): without escapes, the colons
            # of the raw bytes are one per key plus those inside the strings.
            if ts[-1] != "Z" or raw.count(b":") != keys + nf + colons + name.count(":"):
                odd.append(i)
                continue
            ok = sensor_ok.get(name)
            if ok is None:
                ok = self._check_sensor(name)
            if not ok:
                odd.append(i)
                continue
            sensor[i], stamps[i] = name, ts[:-1]
            rows[i] = astuple(doc.values)  # in profile order
            if keys == 5:
                seqs[i], labels[i] = seq, label
            else:
                seqs[i] = None if seq is UNSET else seq
                labels[i] = None if label is UNSET else label
                missing[i] = (b'"seq":null,' if seq is UNSET else b"") + (
                    b'"label":null,' if label is UNSET else b""
                )
        slow[odd] = True
        # Floats only (not ints, bools, None, strings): one C pass over every value.
        kinds = np.fromiter(map(type, chain.from_iterable(rows)), dtype=object, count=n * width)
        not_float = kinds != float  # noqa: E721 (elementwise)
        not_float = not_float.reshape(n, width).any(axis=1)
        if not_float.any():
            slow |= not_float
            for i in np.flatnonzero(not_float).tolist():
                rows[i] = zeros
        values = np.array(rows, dtype=np.float64).reshape(n, width)
        # A value that reads as a float this large may be an integer literal beyond 64 bits
        # (strict_json's number_too_large): the reference decides.
        with np.errstate(invalid="ignore"):
            slow |= ~(np.abs(values) < BIG_FLOAT).all(axis=1)
        ts, slow = self._timestamps(stamps, slow)
        blake2b = hashlib.blake2b
        ids: list[str | None] = [
            None if gone else blake2b(f"{s}|{t}+00:00|{q}".encode(), digest_size=16).hexdigest()
            for gone, s, t, q in zip(slow.tolist(), sensor, stamps, seqs, strict=True)
        ]
        for i in np.flatnonzero(slow).tolist():
            sensor[i] = None
        return DecodedBatch(slow, sensor, ts, seqs, labels, values, ids, missing)

    def _check_sensor(self, name: str) -> bool:
        """``parsing.valid_sensor_id``, remembered per sensor id."""
        if len(self._sensor_ok) > 100_000:
            self._sensor_ok.clear()
        ok = self._sensor_ok[name] = bool(
            name.strip() and len(name) <= MAX_SENSOR_ID and name.isprintable()
        )
        return ok

    @staticmethod
    def _timestamps(stamps: list[str], slow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ns since the epoch; a stamp that is not the canonical spelling of its instant, or
        not a plausible reading time, goes slow."""
        text = np.array(stamps)
        try:
            parsed = text.astype("datetime64[us]")
        except ValueError:
            parsed = np.array(
                [_one_stamp(s) for s in stamps], dtype="datetime64[us]"
            )  # NaT where it fails
        slow = slow | (np.datetime_as_string(parsed, unit="us") != text)
        ns = parsed.astype("datetime64[ns]").view(np.int64)
        slow |= (ns < _EPOCH_NS_MIN) | (ns > _EPOCH_NS_MAX)
        return ns, slow


def _one_stamp(stamp: str) -> np.datetime64:
    try:
        return np.datetime64(stamp, "us")
    except ValueError:
        return np.datetime64("NaT", "us")


def valid_payload(raw: bytes, reading_id: str, missing: bytes) -> bytes:
    """The ValidReading (v1) JSON of a fast row: its own bytes with the id (and nulls for the
    optional fields it lacks) spliced in after the opening brace."""
    return b"".join((_PREFIX, reading_id.encode(), b'",', missing, raw[1:]))


_PREFIX = b'{"v":1,"reading_id":"'
