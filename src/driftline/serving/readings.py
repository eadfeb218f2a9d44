"""The readings of one serving batch, validated as columns.

Serving's middleware has decoded each request strictly (``driftline.strict_json``), so a batch
arrives as decoded JSON. Almost every reading is in the plain shape: an object of
``sensor_id``, ``ts``, ``values`` (a float for every measurement of the profile) and perhaps
``seq``, ``label``, ``v``. Those are recognised with a few type tests each and gathered into
columns (sensor ids, int64 timestamps, a values matrix) without being encoded and parsed again;
every other reading is encoded and parsed on its own by ``driftline.parsing.parse_reading``,
the reference, which says what is wrong with it. One pass of the reading schema (its numpy
screen, pandera on the rows the screen flags) then checks the whole batch, and the same
columns are what the features are computed from.

A reading taken the quick way is one ``parse_reading`` accepts with no problem and the same
fields: ``tests/unit/test_serving_readings.py`` holds the verdicts of the two equal.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from driftline.core.records import FailedCheck, ValidReading, epoch_ns, reading_id
from driftline.core.valid_topic import WireValidReading
from driftline.streaming.dead_letters import dead_letter
from driftline.streaming.messages import Message
from driftline.validation.batch import ReadingValidator
from driftline.validation.parsing import (
    FIELDS,
    MAX_SENSOR_ID,
    PLAUSIBLE_FROM,
    PLAUSIBLE_UNTIL,
    parse_reading,
    parse_timestamp,
    valid_sensor_id,
)
from driftline.validation.screen import Columns

MAX_QUICK_TS = 40  # characters of a ts taken the quick way; a longer one is parsed as before
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


@dataclass
class CheckedBatch:
    """A batch's verdict: the failed checks by position, and the valid readings as columns
    (in batch order). ``readings()`` makes them records, for whoever needs them: serving's
    answers are built from the columns (a pydantic record per reading cost as much as the
    reading's features)."""

    reasons: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    positions: list[int] = field(default_factory=list)
    reading_ids: list[str] = field(default_factory=list)
    sensor_ids: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    seqs: list[int | None] = field(default_factory=list)
    measured: list[dict[str, float]] = field(default_factory=list)
    labels: list[int | None] = field(default_factory=list)
    stamps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype="int64"))
    values: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def readings(self) -> list[ValidReading]:
        return [
            ValidReading(reading_id=i, sensor_id=s, ts=t, seq=q, values=v, label=label)
            for i, s, t, q, v, label in zip(
                self.reading_ids,
                self.sensor_ids,
                self.times,
                self.seqs,
                self.measured,
                self.labels,
                strict=True,
            )
        ]

    @classmethod
    def of_valid(
        cls, readings: Sequence[ValidReading | WireValidReading], features: Sequence[str]
    ) -> CheckedBatch:
        """Readings the validator passed (the valid-readings topic) as a batch's columns,
        without checking them again; a measurement a reading lacks is NaN."""
        return cls(
            positions=list(range(len(readings))),
            reading_ids=[r.reading_id for r in readings],
            sensor_ids=[r.sensor_id for r in readings],
            times=[r.ts for r in readings],
            seqs=[r.seq for r in readings],
            measured=[r.values for r in readings],
            labels=[r.label for r in readings],
            stamps=np.array([epoch_ns(r.ts) for r in readings], dtype="int64"),
            values=np.array(
                [[r.values.get(f, np.nan) for f in features] for r in readings], dtype="float64"
            ).reshape(len(readings), len(features)),
        )

    def keep(self, rows: list[int]) -> CheckedBatch:
        """The valid readings at ``rows`` (indexes into ``positions``) only."""
        index = np.array(rows, dtype="int64")
        return CheckedBatch(
            self.reasons,
            [self.positions[r] for r in rows],
            [self.reading_ids[r] for r in rows],
            [self.sensor_ids[r] for r in rows],
            [self.times[r] for r in rows],
            [self.seqs[r] for r in rows],
            [self.measured[r] for r in rows],
            [self.labels[r] for r in rows],
            self.stamps[index],
            self.values[index],
        )


class BatchChecker:
    def __init__(self, validator: ReadingValidator, stage: str) -> None:
        self.validator = validator
        self.features = validator.features
        self.max_bytes = validator.max_message_bytes
        self.stage = stage
        getter = operator.itemgetter(*self.features)
        self._values = getter if len(self.features) > 1 else lambda v: (getter(v),)
        self._count = len(self.features)
        # The most bytes a reading taken the quick way can encode to: when a reading could
        # exceed the size limit, every reading is parsed, and measured, as before.
        longest = 4 * MAX_SENSOR_ID + 4 * MAX_QUICK_TS + 256
        longest += sum(len(orjson.dumps(f)) + 32 for f in self.features)
        self.quick = longest <= self.max_bytes

    def check(self, docs: Sequence[Any]) -> CheckedBatch:
        n = len(docs)
        sensors: list[Any] = [None] * n
        stamps: list[datetime | None] = [None] * n
        seqs: list[int | None] = [None] * n
        labels: list[int | None] = [None] * n
        rows: list[Any] = [None] * n  # the values in profile order
        measured: list[Any] = [None] * n  # the values as a dict
        reasons: dict[int, list[FailedCheck]] = {}
        fatal: set[int] = set()
        for i, doc in enumerate(docs):
            quick = self._quick(doc) if self.quick else None
            if quick is not None:
                sensors[i], stamps[i], seqs[i], labels[i] = quick
                measured[i] = doc["values"]
                rows[i] = self._values(measured[i])
                continue
            parsed = parse_reading(orjson.dumps(doc, option=_NUMPY), self.features, self.max_bytes)
            if parsed.problems:
                reasons[i] = list(parsed.problems)
            if parsed.fatal:
                fatal.add(i)
                continue
            sensors[i], stamps[i], seqs[i], labels[i] = (
                parsed.sensor_id,
                parsed.ts,
                parsed.seq,
                parsed.label,
            )
            measured[i] = parsed.values
            rows[i] = [parsed.values.get(f, np.nan) for f in self.features]

        kept = [i for i in range(n) if i not in fatal] if fatal else list(range(n))
        ids = [
            reading_id(sensors[i], stamps[i], seqs[i])  # type: ignore[arg-type]
            for i in kept
        ]
        ts = np.array([epoch_ns(stamps[i]) for i in kept], dtype="int64")  # type: ignore[arg-type]
        values = np.array([rows[i] for i in kept], dtype="float64").reshape(len(kept), self._count)
        batch = Columns(sensor_id=[sensors[i] for i in kept], ts=ts, reading_id=ids, values=values)
        for row, failures in self.validator._check(batch).items():
            i = kept[row]
            flagged = {r.column for r in reasons.get(i, ())}
            # A value that failed to parse is NaN in the columns; its not-null failure says
            # nothing new.
            reasons.setdefault(i, []).extend(
                r for r in failures if not (r.check == "not_nullable" and r.column in flagged)
            )

        out = CheckedBatch(
            reasons={i: self._as_json(docs[i], r) for i, r in reasons.items()},
        )
        good = [row for row, i in enumerate(kept) if i not in reasons]
        out.positions = [kept[row] for row in good]
        out.reading_ids = [ids[row] for row in good] if len(good) < len(kept) else ids
        out.sensor_ids = [sensors[i] for i in out.positions]
        out.times = [stamps[i] for i in out.positions]  # type: ignore[misc]
        out.seqs = [seqs[i] for i in out.positions]
        out.measured = [measured[i] for i in out.positions]
        out.labels = [labels[i] for i in out.positions]
        if len(good) == len(kept):
            out.stamps, out.values = ts, values
        else:
            index = np.array(good, dtype="int64")
            out.stamps, out.values = ts[index], values[index]
        return out

    def _quick(self, doc: Any) -> tuple[str, datetime, int | None, int | None] | None:
        """The sensor, time, seq and label of a reading in the plain shape that
        ``parse_reading`` accepts without a problem; None for any other."""
        if type(doc) is not dict or not doc.keys() <= FIELDS:
            return None
        sensor, ts, values = doc.get("sensor_id"), doc.get("ts"), doc.get("values")
        if (
            type(sensor) is not str
            or type(ts) is not str
            or len(ts) > MAX_QUICK_TS
            or type(values) is not dict
            or len(values) != self._count
            or valid_sensor_id(sensor) is None
        ):
            return None
        seq, label = doc.get("seq"), doc.get("label")
        if seq is not None and not (type(seq) is int and 0 <= seq < 2**63):
            return None
        if label is not None and not (type(label) is int and label in (0, 1)):
            return None
        if "v" in doc and not (type(doc["v"]) is int and doc["v"] == 1):
            return None
        for name in self.features:
            if type(values.get(name)) is not float:
                return None
        stamp = parse_timestamp(ts)
        if stamp is None or not PLAUSIBLE_FROM <= stamp <= PLAUSIBLE_UNTIL:
            return None
        return sensor, stamp, seq, label

    def _as_json(self, doc: Any, reasons: list[FailedCheck]) -> list[dict[str, Any]]:
        """Reasons as a dead letter holds them (each field bounded, at most so many)."""
        message = Message(self.stage, 0, 0, None, b"")
        letter = dead_letter(message, self.stage, reasons)
        return [r.model_dump(mode="json") for r in letter.reasons]
