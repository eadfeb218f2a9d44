"""Hypothesis strategies of raw-topic messages: valid readings mixed with every kind of bad input.

Each generated message says what the validator must make of it: accepted (``valid=True``),
dead-lettered (``valid=False``, with at least one of ``checks`` among its reasons), or either
(``valid=None``: arbitrary JSON, where only "exactly one outcome, with a reason" is known).
Valid readings are unique by construction (a per-list counter is their ``seq``, or their
microseconds when they have no ``seq``); duplicates are exact resends of valid ones, so of
each group of copies exactly one is accepted and the others fail ``not_duplicate``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import strategies as st

from driftline.core.profile import Profile
from driftline.core.records import reading_id
from driftline.validation.parsing import parse_timestamp

MAX_AGE = timedelta(days=6)  # the profile allows 7: a margin for the time a round takes
MAX_AHEAD = timedelta(seconds=60)  # the profile allows 300 s of clock skew


@dataclass(frozen=True)
class Case:
    kind: str
    key: bytes | None
    value: bytes | None
    valid: bool | None
    checks: frozenset[str] = frozenset()
    group: str | None = None  # reading id of a valid reading and of its resent copies
    doc: dict[str, Any] | None = field(default=None, compare=False, repr=False)


def _dumps(doc: Any) -> bytes:
    # json, not orjson: it writes NaN/Infinity tokens and integers of any size.
    return json.dumps(doc, allow_nan=True).encode()


class Maker:
    """Builds one list of cases; ``counter`` keeps the valid readings' identities unique."""

    def __init__(self, profile: Profile, now: datetime, run: str, max_bytes: int) -> None:
        self.profile = profile
        self.max_bytes = max_bytes
        self.features = profile.features
        self.now = now
        self.run = run
        self.counter = 0

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    def sensor(self, n: int) -> str:
        return f"{'pump' if n % 2 else 'skab'}-{self.run}-{n}"

    def values(self, seed: int, edge: str) -> dict[str, float]:
        rng = np.random.default_rng(seed)
        out = {}
        for name in self.features:
            m = self.profile.measurements[name]
            if edge == "min":
                out[name] = float(m.min)
            elif edge == "max":
                out[name] = float(m.max)
            elif edge == "int":  # integral JSON numbers are numbers too
                out[name] = int(rng.integers(int(m.min), int(m.max), endpoint=True))
            else:
                out[name] = float(rng.uniform(m.min, m.max))
        return out

    def ts_text(self, ts: datetime, style: int) -> str:
        if style == 0:
            return ts.isoformat(timespec="microseconds").replace("+00:00", "Z")
        if style == 1:  # another offset, same instant
            return ts.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
        if style == 2:  # naive: taken as UTC
            return ts.replace(tzinfo=None).isoformat()
        return ts.isoformat(timespec="milliseconds")

    def valid_doc(self, draw: st.DrawFn) -> dict[str, Any]:
        n = self.next_id()
        sensor = self.sensor(draw(st.integers(0, 5)))
        age = draw(st.integers(-int(MAX_AHEAD.total_seconds()), int(MAX_AGE.total_seconds())))
        has_seq = n % 4 != 0
        ts = self.now - timedelta(seconds=age)
        if not has_seq:  # identity from the time alone: make the time unique
            ts = ts.replace(microsecond=0) + timedelta(microseconds=n)
        # Milliseconds (style 3) would drop the microseconds that make a seq-less one unique.
        style = draw(st.integers(0, 3 if has_seq else 2))
        doc: dict[str, Any] = {"sensor_id": sensor, "ts": self.ts_text(ts, style)}
        if has_seq:
            doc["seq"] = n
        edge = draw(st.sampled_from(["random", "random", "random", "min", "max", "int"]))
        doc["values"] = self.values(draw(st.integers(0, 2**32)), edge)
        extra = draw(st.sampled_from(["", "", "label0", "label1", "v1", "null"]))
        if extra == "label0":
            doc["label"] = 0
        elif extra == "label1":
            doc["label"] = 1
        elif extra == "v1":
            doc["v"] = 1
        elif extra == "null":  # optional fields may be null
            doc["label"] = None
            if not has_seq:
                doc["seq"] = None
        return doc

    def identity(self, doc: dict[str, Any]) -> str:
        ts = parse_timestamp(doc["ts"])
        assert ts is not None
        return reading_id(doc["sensor_id"], ts, doc.get("seq"))


KEYS = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.text(max_size=300).map(str.encode),
)


@st.composite
def _valid(draw: st.DrawFn, m: Maker) -> Case:
    doc = m.valid_doc(draw)
    key = doc["sensor_id"].encode() if draw(st.integers(0, 4)) else None  # unkeyed is fine
    return Case("valid", key, _dumps(doc), True, group=m.identity(doc), doc=doc)


def _bad(kind: str, doc: Any, checks: set[str]) -> Case:
    """A case that must be dead-lettered: ``doc`` is the raw bytes, or a document to encode."""
    value = doc if isinstance(doc, bytes) else _dumps(doc)
    return Case(kind, None, value, False, frozenset(checks))


NOT_JSON = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.text(min_size=1, max_size=200).map(str.encode),
    st.sampled_from([b"{", b'{"sensor_id": ', b"{'a': 1}", b"NaN]", b"\xff\xfe{}", b"nul"]),
).filter(lambda raw: not _parses(raw))


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return True


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),  # beyond: the huge_number kind
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=5,
)
FIELDS = ["sensor_id", "ts", "seq", "values", "label", "v", "Current", "Voltage", "extra"]


@st.composite
def _invalid(draw: st.DrawFn, m: Maker) -> Case:  # noqa: C901, PLR0911, PLR0912 - one branch a kind
    kind = draw(st.sampled_from(INVALID_KINDS))
    doc = m.valid_doc(draw)
    feature = draw(st.sampled_from(m.features))
    if kind == "tombstone":
        return Case(kind, None, None, False, frozenset({"not_json"}))
    if kind == "not_json":
        return _bad(kind, draw(NOT_JSON), {"not_json", "bad_encoding"})
    if kind == "not_object":
        value = draw(st.one_of(JSON_SCALARS, st.lists(JSON_SCALARS, max_size=3)))
        return _bad(kind, value, {"not_object"})
    if kind == "missing_field":
        del doc[draw(st.sampled_from(["sensor_id", "ts", "values"]))]
        return _bad(kind, doc, {"missing_field"})
    if kind == "extra_field":
        name = draw(st.text(min_size=1, max_size=30).filter(lambda s: s not in FIELDS[:6]))
        doc[name] = draw(JSON_SCALARS)
        return _bad(kind, doc, {"unexpected_field"})
    if kind == "wrong_type":
        name = draw(st.sampled_from(["sensor_id", "ts", "values", "seq", "label", "value"]))
        bad = draw(
            st.sampled_from(
                [None, True, 1, -1, 2.5, "x", "", " ", [], {}, [1], "2024", 2**64, "a" * 200]
            )
        )
        if name == "value":
            bad = draw(st.sampled_from([True, "1.0", "high", [], {}, [1.0]]))
            doc["values"][feature] = bad
            return _bad(kind, doc, {"wrong_type"})
        ok = {
            "sensor_id": lambda v: isinstance(v, str) and v.strip() and len(v) <= 128,
            "ts": lambda v: isinstance(v, str) and parse_timestamp(v) is not None,
            "values": lambda v: isinstance(v, dict),
            "seq": lambda v: v is None or (type(v) is int and 0 <= v < 2**63),
            "label": lambda v: v is None or (type(v) in (int, float) and v in (0, 1)),
        }[name]
        if ok(bad):
            bad = {"x": 1}
        doc[name] = bad
        return _bad(
            kind, doc, {"wrong_type", "known_sensor", "missing_measurement", "number_too_large"}
        )
    if kind == "nan_token":
        # json writes the NaN, Infinity and -Infinity tokens sensor stacks emit.
        doc["values"][feature] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return _bad(kind, doc, {"finite", "not_nullable", "in_range"})
    if kind == "nan_string":
        doc["values"][feature] = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "inf"]))
        return _bad(kind, doc, {"wrong_type"})
    if kind == "null_value":
        doc["values"][feature] = None
        return _bad(kind, doc, {"not_nullable"})
    if kind == "huge_number":
        spec = m.profile.measurements[feature]
        doc["values"][feature] = draw(
            st.one_of(
                st.sampled_from([1e308, -1e308, 10**20, -(10**20), 10**400, -(10**400)]),
                st.floats(min_value=spec.max, exclude_min=True, allow_infinity=False),
                st.floats(max_value=spec.min, exclude_max=True, allow_infinity=False),
            )
        )
        return _bad(kind, doc, {"in_range", "finite", "number_too_large"})
    if kind == "huge_literal":  # 1e999 is inf to json; 5,000 digits exceed int parsing
        doc["values"][feature] = "__literal__"
        raw = _dumps(doc).replace(
            b'"__literal__"', draw(st.sampled_from([b"1e999", b"-1e999", b"9" * 5000]))
        )
        return _bad(kind, raw, {"in_range", "finite", "number_too_large", "too_large"})
    if kind == "too_large":
        # A reading that would be valid but for its size (whitespace is valid JSON).
        size = draw(st.integers(m.max_bytes + 1, m.max_bytes + 2048))
        raw = _dumps(doc)
        pad = draw(st.sampled_from([b" ", b"\x01", b"\xff", b"\n"]))
        return _bad(kind, raw + pad * (size - len(raw)), {"too_large"})
    if kind == "unknown_sensor":
        doc["sensor_id"] = draw(
            st.sampled_from([f"ghost-{m.run}", f"PUMP-{m.run}", f"xpump-{m.run}", "pump"])
        )
        return _bad(kind, doc, {"known_sensor"})
    if kind == "old_ts":
        old = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "0001-01-01T00:00:00",
                        "0001-01-01T00:00:00+01:00",
                        "1900-01-01T00:00:00Z",
                        "1969-12-31T23:59:59Z",
                        "1970-01-01T00:00:00Z",
                    ]
                ),
                st.integers(8, 20_000).map(
                    lambda d: (m.now - timedelta(days=d)).isoformat().replace("+00:00", "Z")
                ),
            )
        )
        doc["ts"] = old
        return _bad(kind, doc, {"not_too_old", "wrong_type"})
    if kind == "future_ts":
        future = draw(
            st.one_of(
                st.sampled_from(
                    [
                        "9999-12-31T23:59:59.999999",
                        "9999-12-31T23:59:59-01:00",
                        "2200-01-01T00:00:01Z",
                    ]
                ),
                st.integers(600, 10**9).map(
                    lambda s: (m.now + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")
                ),
            )
        )
        doc["ts"] = future
        return _bad(kind, doc, {"not_in_future", "wrong_type"})
    if kind == "bad_ts":
        doc["ts"] = draw(
            st.one_of(
                st.sampled_from(["2024-13-45T00:00:00Z", "yesterday", "", "12:00", "2024-02-30"]),
                st.text(max_size=30).filter(lambda s: parse_timestamp(s) is None),
            )
        )
        return _bad(kind, doc, {"wrong_type"})
    if kind == "version":
        doc["v"] = draw(st.sampled_from([0, 2, "1", 1.5, None, [1]]))
        if doc["v"] is None:
            doc["v"] = 2
        return _bad(kind, doc, {"unsupported_version"})
    if kind == "unknown_measurement":
        doc["values"][
            draw(st.text(min_size=1, max_size=20).filter(lambda s: s not in m.features))
        ] = 1.0
        return _bad(kind, doc, {"unknown_measurement"})
    if kind == "missing_measurement":
        del doc["values"][feature]
        return _bad(kind, doc, {"missing_measurement"})
    raise AssertionError(kind)


@st.composite
def _key_mismatch(draw: st.DrawFn, m: Maker) -> Case:
    """A valid reading under another key (not UTF-8, another sensor's, empty, ...)."""
    doc = m.valid_doc(draw)
    own = doc["sensor_id"].encode()
    key = draw(
        st.one_of(
            st.binary(max_size=64),
            st.text(max_size=300).map(str.encode),
            st.sampled_from([own.upper(), own + b" ", b"\xef\xbb\xbf" + own, own[:-1]]),
        )
    )
    key = key if key != own else key + b"x"
    return Case("key_mismatch", key, _dumps(doc), False, frozenset({"key_mismatch"}))


@st.composite
def _invalid_keyed(draw: st.DrawFn, m: Maker) -> Case:
    case = draw(_invalid(m))
    key = draw(KEYS)
    if case.value is None and key is None:
        key = b""  # Kafka takes no message without both: a tombstone has a key
    return Case(case.kind, key, case.value, case.valid, case.checks)


INVALID_KINDS = [
    "tombstone",
    "not_json",
    "not_object",
    "missing_field",
    "extra_field",
    "wrong_type",
    "nan_token",
    "nan_string",
    "null_value",
    "huge_number",
    "huge_literal",
    "too_large",
    "unknown_sensor",
    "old_ts",
    "future_ts",
    "bad_ts",
    "version",
    "unknown_measurement",
    "missing_measurement",
]


@st.composite
def _anything(draw: st.DrawFn, m: Maker) -> Case:
    """Arbitrary JSON, or a valid reading with one field replaced by arbitrary JSON."""
    if draw(st.booleans()):
        value = draw(st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6))
    else:
        value = m.valid_doc(draw)
        # A sensor of its own: if it stays valid, its identity is no other case's.
        value["sensor_id"] = f"pump-{m.run}-any{m.next_id()}"
        value[draw(st.sampled_from(FIELDS[:6]))] = draw(JSON_VALUES)
    return Case("anything", draw(KEYS), _dumps(value), None)


@st.composite
def message_cases(
    draw: st.DrawFn,
    profile: Profile,
    now: datetime,
    run: str,
    *,
    max_bytes: int,
    min_size: int,
    max_size: int,
    keys_checked: bool = False,
) -> list[Case]:
    """A shuffled list of cases: valid readings, resent copies of some, and bad input."""
    m = Maker(profile, now, run, max_bytes)
    kinds = [_valid(m), _valid(m), _invalid_keyed(m), _anything(m)]
    if keys_checked:  # the key is the stream's: serving's bodies have none
        kinds.append(_key_mismatch(m))
    one = st.one_of(*kinds)
    cases = draw(st.lists(one, min_size=min_size, max_size=max_size))
    valid = [c for c in cases if c.kind == "valid"]
    if valid:
        copies = draw(st.lists(st.sampled_from(valid), max_size=max(1, len(valid) // 5)))
        cases += [
            Case("duplicate", c.key, c.value, None, frozenset({"not_duplicate"}), c.group)
            for c in copies
        ]
    return draw(st.permutations(cases))
