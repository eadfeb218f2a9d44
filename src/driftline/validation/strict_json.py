"""Strict JSON decoding of untrusted bytes: a value, or a ``MalformedJson`` that says why.

Whatever the bytes, ``load_json`` returns a value or raises ``MalformedJson`` (a
``ValueError``) with a check name; it never raises anything else and never recurses deeper
than ``max_depth``. What it accepts is what the wire format says: UTF-8 without a byte order
mark, no lone surrogate escapes, integers within 64 bits, no key twice in one object. The
NaN and Infinity tokens many sensor stacks emit are accepted (as floats), so the schema can
say what is wrong with such a value.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from driftline.core.errors import DriftlineError

MAX_DEPTH = 64
MAX_BYTES = 16 * 1024 * 1024
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
BIG_FLOAT = 9.2e18  # below 2**63: any integer literal beyond 64 bits reads as a float past it

BOMS = (
    (b"\xef\xbb\xbf", "UTF-8"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_INTEGER = re.compile(rb"(?<![\d.eE+-])-?\d{19,}(?![\d.eE])")
_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedJson(DriftlineError, ValueError):
    """The bytes are not acceptable JSON; ``check`` names the rule they broke."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(detail)
        self.check = check
        self.detail = detail[:200]


def load_json(raw: bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """The value ``raw`` encodes, or ``MalformedJson``.

    Checks: ``too_large``, ``bad_encoding`` (not UTF-8, a byte order mark, UTF-16/32),
    ``not_json``, ``too_deep``, ``lone_surrogate``, ``number_too_large``, ``duplicate_key``.
    """
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    if len(raw) > max_bytes:
        raise MalformedJson("too_large", f"{len(raw)} bytes, limit {max_bytes}")
    for bom, name in BOMS:
        if raw.startswith(bom):
            raise MalformedJson("bad_encoding", f"starts with a {name} byte order mark")
    try:
        value = orjson.loads(raw)
        checked_strings = True  # orjson rejects lone surrogates itself
    except orjson.JSONDecodeError:
        value = _fallback(raw, max_depth)
        checked_strings = False
    _check_structure(raw, value, max_depth, checked_strings)
    return value


def _fallback(raw: bytes, max_depth: int) -> Any:
    """Python's parser, for what orjson refuses: the NaN and Infinity tokens (and the errors,
    which it reports more plainly). Text, not bytes: bytes would let it guess UTF-16."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson("bad_encoding", f"not UTF-8: {exc}") from None
    if _deeper_than(_STRING.sub(b'""', raw), max_depth):
        raise MalformedJson("too_deep", f"nested deeper than {max_depth}")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except MalformedJson:
        raise
    except RecursionError:
        raise MalformedJson("too_deep", f"nested deeper than {max_depth}") from None
    except ValueError as exc:
        raise MalformedJson("not_json", f"not valid JSON: {exc}") from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19 or not INT_MIN <= (value := int(text)) <= INT_MAX:
        raise MalformedJson("number_too_large", f"integer {text[:40]} does not fit 64 bits")
    return value


def _deeper_than(structure: bytes, max_depth: int) -> bool:
    """Whether brackets nest deeper than ``max_depth`` in JSON whose strings are emptied."""
    if structure.count(b"[") + structure.count(b"{") <= max_depth:
        return False
    depth = 0
    for byte in structure:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


def _check_structure(raw: bytes, value: Any, max_depth: int, checked_strings: bool) -> None:
    """What a parser's result hides: nesting, integers it turned into floats, keys it
    overwrote, surrogates it let through. Cheap counts first; the exact scan of the raw
    bytes only when they cannot rule a problem out."""
    keys = colons = depth = 0  # colons: inside the strings, as decoded
    suspect_number = False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if level > depth:
            depth = level
            if depth > max_depth:
                raise MalformedJson("too_deep", f"nested deeper than {max_depth}")
        items: Any
        if type(node) is dict:
            if node:
                keys += len(node)
                names = ":".join(node)  # one string: a cheap count and search over every key
                colons += names.count(":") - len(node) + 1
                if not checked_strings and _SURROGATE.search(names):
                    raise MalformedJson("lone_surrogate", "a key holds a lone surrogate")
            items = node.values()
        elif type(node) is list:
            items = node
        else:
            items = (node,)
            level -= 1  # a scalar at the top is not nested
        for item in items:
            kind = type(item)
            if kind is float:
                if not -BIG_FLOAT < item < BIG_FLOAT:
                    suspect_number = True  # orjson reads an integer beyond 64 bits as a float
            elif kind is str:
                colons += item.count(":")
                if not checked_strings and _SURROGATE.search(item):
                    raise MalformedJson("lone_surrogate", f"string {item[:40]!r}: a lone surrogate")
            elif kind is dict or kind is list:
                stack.append((item, level + 1))
            elif kind is int and not INT_MIN <= item <= INT_MAX:
                raise MalformedJson(
                    "number_too_large", f"integer {str(item)[:40]} does not fit 64 bits"
                )
    if suspect_number:
        for literal in _INTEGER.findall(_STRING.sub(b'""', raw)):
            _bounded_int(literal.decode())
    if _repeats_a_key(raw, keys, colons):
        raise MalformedJson("duplicate_key", f"a key repeated in one object: {_repeated(raw)}")


def _repeats_a_key(raw: bytes, keys: int, string_colons: int) -> bool:
    """Whether ``raw`` writes more key: value pairs than the parsed objects hold. Each colon
    outside a string is a pair's; without escapes (one could spell a colon) the colons inside
    strings are those of the parsed strings, so a plain count settles the common case."""
    if b"\\u" not in raw and raw.count(b":") == keys + string_colons:
        return False
    return _STRING.sub(b'""', raw).count(b":") > keys


def _repeated(raw: bytes) -> str:
    """The first key that occurs twice in one object (only called when one does)."""
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen and not found:
                found.append(key)
            seen.add(key)
        return dict(items)

    json.loads(raw.decode("utf-8"), object_pairs_hook=pairs)
    return repr(found[0][:40]) if found else "?"
