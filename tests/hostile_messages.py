"""Hypothesis strategies of what a broken or malicious sensor sends: hostile bytes, Unicode
(lone surrogates, NUL, direction overrides, byte order marks, UTF-16/32), nesting depth,
number sizes, duplicate keys, wrong versions and keys, oversized payloads.

Each ``Hostile`` message is built around a reading document (so most of it looks right) and
must be dead-lettered by the validator, whatever it holds; its key may be hostile too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Hostile:
    kind: str
    key: bytes | None
    value: bytes


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, allow_nan=True).encode()


def _with_literal(doc: dict[str, Any], path: tuple[str, ...], literal: bytes) -> bytes:
    """``doc`` as JSON with the value at ``path`` replaced by raw ``literal`` bytes."""
    marker = "__hostile_literal__"
    target = doc
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = marker
    return _dumps(doc).replace(f'"{marker}"'.encode(), literal)


SURROGATES = st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}".encode())
HOSTILE_CHARS = st.sampled_from(["\x00", "\u202e", "\ufeff", "\u200b", "\x1b[31m", "\n"])
PLACES = ("sensor_id", "ts", "seq", "v", "label", "values")


@st.composite
def hostile_message(draw: st.DrawFn, doc: dict[str, Any], max_bytes: int) -> Hostile:  # noqa: C901, PLR0911 - a branch a kind
    """A hostile variant of the valid reading ``doc`` (which it may change)."""
    kind = draw(st.sampled_from(KINDS))
    sensor = doc["sensor_id"]
    key = sensor.encode()
    feature = draw(st.sampled_from(sorted(doc["values"])))
    if kind == "bytes":
        return Hostile(
            kind, draw(st.none() | st.binary(max_size=16)), draw(st.binary(max_size=300))
        )
    if kind == "surrogate":
        where = draw(st.sampled_from(["sensor_id", "measurement", "field", "value"]))
        escape = draw(SURROGATES)
        if where == "sensor_id":
            return Hostile(kind, key, _with_literal(doc, ("sensor_id",), b'"pump-' + escape + b'"'))
        if where == "value":
            return Hostile(kind, key, _with_literal(doc, ("ts",), b'"' + escape + b'"'))
        name = b'"x' + escape + b'"'
        raw = _dumps(doc)
        if where == "measurement":
            return Hostile(
                kind, key, raw.replace(b'"values": {', b'"values": {' + name + b": 1.0, ", 1)
            )
        return Hostile(kind, key, raw[:-1] + b", " + name + b": 1}")
    if kind == "control_chars":
        doc["sensor_id"] = sensor + draw(HOSTILE_CHARS)
        return Hostile(kind, key, _dumps(doc))
    if kind == "encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"]))
        return Hostile(kind, key, json.dumps(doc).encode(codec))
    if kind == "deep":
        depth = draw(st.integers(65, 50_000))
        bracket = draw(st.sampled_from(["[]", "{}"]))
        nested = (
            b"[" * depth + b"1" + b"]" * depth
            if bracket == "[]"
            else b'{"a":' * depth + b"1" + b"}" * depth
        )
        if len(nested) > max_bytes:
            nested = b"[" * depth + b"]" * depth  # still deep; the size check may come first
        return Hostile(kind, key, _with_literal(doc, ("values", feature), nested))
    if kind == "huge_integer":
        digits = draw(st.integers(20, 20_000))
        literal = draw(st.sampled_from([b"", b"-"])) + b"9" * digits
        where = draw(st.sampled_from([("seq",), ("v",), ("label",), ("values", feature)]))
        return Hostile(kind, key, _with_literal(doc, where, literal))
    if kind == "duplicate_key":
        raw = _dumps(doc)
        if draw(st.booleans()):
            return Hostile(kind, key, raw[:-1] + b', "sensor_id": "pump-other"}')
        return Hostile(
            kind, key, raw.replace(b'"values": {', f'"values": {{"{feature}": 1.0, '.encode(), 1)
        )
    if kind == "version":
        doc["v"] = draw(st.sampled_from([True, 1.0, "1", 2, [1], {"v": 1}]))
        return Hostile(kind, key, _dumps(doc))
    if kind == "key":
        other = draw(
            st.sampled_from([b"\xff\xfe", b"", b"pump-other", sensor.upper().encode(), b"\x00"])
        )
        return Hostile(kind, other, _dumps(doc))
    if kind == "oversized":
        pad = draw(st.integers(1, 4096))
        raw = _dumps(doc)
        return Hostile(kind, key, raw + b" " * (max_bytes - len(raw) + pad))
    raise AssertionError(kind)


KINDS = [
    "bytes",
    "surrogate",
    "control_chars",
    "encoding",
    "deep",
    "huge_integer",
    "duplicate_key",
    "version",
    "key",
    "oversized",
]
