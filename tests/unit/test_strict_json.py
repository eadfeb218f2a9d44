"""load_json: any bytes give a value or a MalformedJson with its check, nothing else."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.validation.parsing import load_json
from driftline.validation.strict_json import INT_MAX, INT_MIN, MAX_DEPTH, MalformedJson

CHECKS = {
    "too_large",
    "bad_encoding",
    "not_json",
    "too_deep",
    "lone_surrogate",
    "number_too_large",
    "duplicate_key",
}

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT_MIN, INT_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def outcome(raw: bytes) -> tuple[str, Any]:
    try:
        return "ok", load_json(raw)
    except MalformedJson as exc:
        assert exc.check in CHECKS
        assert isinstance(exc, ValueError)
        return exc.check, None


@given(st.binary(max_size=300))
def test_any_bytes_give_a_value_or_a_typed_failure(raw: bytes) -> None:
    outcome(raw)


@given(VALUES, st.booleans())
def test_json_within_the_rules_decodes_to_itself(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert load_json(raw) == value


@given(VALUES)
def test_the_nan_tokens_take_the_same_path_as_the_rest(value: Any) -> None:
    # NaN makes orjson refuse the document, so Python's parser reads it: same rules, same value.
    raw = json.dumps([value, math.nan]).encode()
    decoded = load_json(raw)
    assert decoded[0] == value
    assert math.isnan(decoded[1])


@given(VALUES, st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"]))
def test_other_encodings_and_byte_order_marks_are_rejected(value: Any, encoding: str) -> None:
    raw = json.dumps({"v": value}).encode(encoding)
    assert outcome(raw)[0] in {"bad_encoding", "not_json"}


@given(
    st.integers(0xD800, 0xDFFF),
    st.sampled_from(["key", "value", "nested"]),
    st.booleans(),
)
def test_a_lone_surrogate_escape_is_rejected(code: int, where: str, with_nan: bool) -> None:
    bad = chr(code)
    doc: Any = {
        "key": {bad: 1},
        "value": {"sensor_id": bad},
        "nested": {"values": [{"name": "x" + bad + "y"}]},
    }[where]
    if with_nan:
        doc["nan"] = math.nan
    raw = json.dumps(doc).encode()  # ensure_ascii: the surrogate is written as an escape
    assert outcome(raw)[0] == "lone_surrogate"


def test_a_surrogate_pair_escape_is_one_character() -> None:
    assert load_json(b'{"s":"\\ud83d\\ude00"}') == {"s": "\U0001f600"}


@given(st.integers(1, 3 * MAX_DEPTH), st.sampled_from(["[", "{"]), st.booleans())
def test_nesting_is_bounded(depth: int, bracket: str, with_nan: bool) -> None:
    inner = "NaN" if with_nan else "0"
    if bracket == "[":
        raw = "[" * depth + inner + "]" * depth
    else:
        raw = '{"a":' * depth + inner + "}" * depth
    check, _ = outcome(raw.encode())
    assert check == ("ok" if depth <= MAX_DEPTH else "too_deep")


@pytest.mark.parametrize("depth", [1025, 10_000, 200_000])
def test_deep_nesting_past_the_parsers_own_limits_is_too_deep(depth: int) -> None:
    assert outcome(b"[" * depth + b"]" * depth)[0] == "too_deep"


@given(
    st.one_of(st.integers(max_value=INT_MIN - 1), st.integers(min_value=INT_MAX + 1)),
    st.booleans(),
)
def test_integers_beyond_64_bits_are_rejected(number: int, with_nan: bool) -> None:
    doc = {"values": {"Current": number}, "nan": math.nan if with_nan else 0.5}
    assert outcome(json.dumps(doc).encode())[0] == "number_too_large"


@pytest.mark.parametrize("digits", [400, 5000, 100_000])
def test_very_long_integer_literals_are_rejected(digits: int) -> None:
    assert outcome(b'{"seq":' + b"7" * digits + b"}")[0] == "number_too_large"


@given(st.sampled_from([INT_MIN, INT_MAX, 0, -1]), st.booleans())
def test_integers_at_the_bounds_are_kept(number: int, with_nan: bool) -> None:
    tail = ',"n":NaN' if with_nan else ""
    assert load_json(f'{{"x":{number}{tail}}}'.encode())["x"] == number


@pytest.mark.parametrize("literal", [b"1e999", b"1.0e25", b"12345678901234567890.5", b"1E+30"])
def test_large_floats_are_floats_not_integers(literal: bytes) -> None:
    assert isinstance(load_json(b'{"x":' + literal + b"}")["x"], float)


@given(
    st.dictionaries(TEXT, SCALARS, min_size=1, max_size=5),
    st.data(),
    st.booleans(),
)
def test_a_repeated_key_is_rejected(doc: dict[str, Any], data: st.DataObject, nest: bool) -> None:
    key = data.draw(st.sampled_from(sorted(doc)))
    body = json.dumps(doc)[:-1] + f", {json.dumps(key)}: {json.dumps(data.draw(SCALARS))}}}"
    raw = ('{"outer": [' + body + "]}" if nest else body).encode()
    check, _ = outcome(raw)
    assert check == "duplicate_key"


def test_a_repeated_key_hidden_behind_escaped_colons_is_found() -> None:
    # Colons inside strings, written as escapes, must not make up for the repeated key.
    assert outcome(b'{"a":1,"a":"\\u003a"}')[0] == "duplicate_key"
    assert outcome(b'{"a:":1,"a:":"x"}')[0] == "duplicate_key"
    assert load_json(b'{"a\\u003a":":","b":"\\u003a:"}') == {"a:": ":", "b": "::"}


def test_a_repeated_key_names_the_key() -> None:
    with pytest.raises(MalformedJson, match="'sensor_id'"):
        load_json(b'{"sensor_id":"a","ts":"t","sensor_id":"b"}')


def test_size_is_bounded() -> None:
    raw = orjson.dumps({"x": "y" * 100})
    assert load_json(raw, max_bytes=len(raw)) == {"x": "y" * 100}
    assert outcome_with_limit(raw, len(raw) - 1) == "too_large"


def outcome_with_limit(raw: bytes, limit: int) -> str:
    try:
        load_json(raw, max_bytes=limit)
    except MalformedJson as exc:
        return exc.check
    return "ok"


FRAGMENTS = [b"{", b"}", b"[", b"]", b'"', b":", b",", b'"a"', b"\\", b"\\ud800", b"\\udc00"]
FRAGMENTS += [b"\\u003a", b"NaN", b"-Infinity", b"1e999", b"9" * 30, b"\xef\xbb\xbf"]
FRAGMENTS += [b"\x00", b"\xff"]


@given(st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=6), max_size=30))
def test_hostile_fragments_give_a_value_or_a_typed_failure(parts: list[bytes]) -> None:
    check, value = outcome(b"".join(parts))
    if check == "ok":  # what passed encodes as UTF-8 again: no surrogate slipped through
        assert json.dumps(value, ensure_ascii=False).encode("utf-8")
