"""Hypothesis strategies of hostile request bodies: a valid wire-format reading turned into
what a broken or malicious client sends. Each must be refused (4xx) with a reason, never
scored, and must not disturb the next good request.

Kinds: nesting depth (just past the limit to 10,000), Unicode (lone surrogate escapes, NUL,
right-to-left override, BOM, other format characters) in the sensor id, a measurement name or
an unknown field name, encodings (UTF-16/32 with and without BOM, UTF-8 with BOM, Latin-1),
integer literals of 20 to 5,000 digits as a value or the seq, duplicate keys, and record
versions that are not the integer 1 (``true``, ``1.0``, ``"1"``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

PLACEHOLDER = "__hostile__"


@dataclass(frozen=True)
class Hostile:
    kind: str
    body: bytes


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _with_raw(doc: dict[str, Any], raw: bytes) -> bytes:
    """``doc`` as JSON with the placeholder string (quotes included) replaced by ``raw``."""
    return _dumps(doc).replace(json.dumps(PLACEHOLDER).encode(), raw)


LONE_SURROGATES = st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}".encode())
FORMAT_CHARACTERS = st.sampled_from(["\x00", "\u202e", "\ufeff", "\u200b", "\x7f", "\u2066"])


@st.composite
def hostile_bodies(draw: st.DrawFn, good: dict[str, Any]) -> Hostile:  # noqa: C901, PLR0911
    doc = json.loads(json.dumps(good))  # a copy
    measurement = draw(st.sampled_from(sorted(doc["values"])))
    kind = draw(st.sampled_from(KINDS))
    if kind == "deep":
        depth = draw(st.one_of(st.integers(65, 1200), st.sampled_from([900, 5000, 10_000])))
        where = draw(st.sampled_from(["body", "value", "field"]))
        nested = b"[" * depth + b"1" + b"]" * depth
        if where == "body":
            return Hostile(kind, b"[" * depth + _dumps(doc) + b"]" * depth)
        if where == "value":
            doc["values"][measurement] = PLACEHOLDER
        else:
            doc["extra"] = PLACEHOLDER
        return Hostile(kind, _with_raw(doc, nested))
    if kind == "lone_surrogate":
        escape = draw(LONE_SURROGATES)
        where = draw(st.sampled_from(["sensor_id", "measurement", "field"]))
        text = b'"' + draw(st.sampled_from([b"", b"pump-"])) + escape + b'"'
        if where == "sensor_id":
            doc["sensor_id"] = PLACEHOLDER
            return Hostile(kind, _with_raw(doc, text))
        body = _dumps(doc)
        name = json.dumps(measurement if where == "measurement" else "extra").encode()
        if where == "measurement":
            return Hostile(kind, body.replace(name, text, 1))
        return Hostile(kind, body[:-1] + b", " + text + b": 1}")
    if kind == "format_character":
        char = draw(FORMAT_CHARACTERS)
        where = draw(st.sampled_from(["sensor_id", "measurement", "field"]))
        if where == "sensor_id":
            doc["sensor_id"] = doc["sensor_id"] + char
        elif where == "measurement":
            doc["values"][measurement + char] = doc["values"].pop(measurement)
        else:
            doc["extra" + char] = 1
        return Hostile(kind, _dumps(doc))
    if kind == "encoding":
        codec = draw(
            st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig", "latin-1"])
        )
        if codec == "latin-1":
            doc["sensor_id"] = doc["sensor_id"] + "\xe9"
        return Hostile(f"{kind}:{codec}", json.dumps(doc, ensure_ascii=False).encode(codec))
    if kind == "big_integer":
        digits = draw(st.integers(20, 5000))
        literal = draw(st.sampled_from([b"", b"-"])) + b"9" * digits
        if draw(st.booleans()):
            doc["values"][measurement] = PLACEHOLDER
        else:
            doc["seq"] = PLACEHOLDER
        return Hostile(kind, _with_raw(doc, literal))
    if kind == "duplicate_key":
        body = _dumps(doc)
        if draw(st.booleans()):  # a top-level key twice
            key = draw(st.sampled_from(["sensor_id", "ts", "values", "seq"]))
            extra = json.dumps(key).encode() + b": " + json.dumps(doc[key]).encode() + b", "
            return Hostile(kind, b"{" + extra + body[1:])
        name = json.dumps(measurement).encode()
        return Hostile(kind, body.replace(name, name + b": 0.5, " + name, 1))
    if kind == "version":
        doc["v"] = draw(st.sampled_from([True, 1.0, "1", 2, None, [1]]))
        return Hostile(kind, _dumps(doc))
    raise AssertionError(kind)


KINDS = [
    "deep",
    "lone_surrogate",
    "format_character",
    "encoding",
    "big_integer",
    "duplicate_key",
    "version",
]

HOSTILE_EXAMPLES = 120  # per test run; every kind is drawn many times
