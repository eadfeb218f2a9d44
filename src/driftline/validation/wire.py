"""The columnar wire path of validation: a batch of raw messages decoded once into arrays,
checked with whole-array operations, valid readings forwarded as their own bytes.

``ReadingValidator.validate_wire`` runs it; ``ReadingValidator.validate`` (batch.py) is the
reference it must agree with (``tests/unit/test_wire_verdict.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from driftline.core.errors import DriftlineError
from driftline.core.recent_ids import RecentIds
from driftline.core.records import DeadLetter, FailedCheck, epoch_ns
from driftline.streaming.dead_letters import dead_letter
from driftline.streaming.messages import Message
from driftline.validation.columns import ColumnDecoder, valid_payload
from driftline.validation.parsing import ParsedReading, key_mismatch, parse_reading
from driftline.validation.schema import BatchContext
from driftline.validation.screen import NAT, Columns, Screen

if TYPE_CHECKING:
    from driftline.validation.batch import BatchVerdict


@dataclass
class WireVerdict:
    """``validate_wire``'s verdict: each valid reading as its ValidReading JSON (v1), ready to
    publish, with its id and sensor; invalid ones dead-lettered as by
    ``ReadingValidator.validate``."""

    valid: list[tuple[Message, bytes]] = field(default_factory=list)
    reading_ids: list[str] = field(default_factory=list)
    sensor_ids: list[str] = field(default_factory=list)
    invalid: list[tuple[Message, DeadLetter]] = field(default_factory=list)

    @classmethod
    def of(cls, verdict: BatchVerdict) -> WireVerdict:
        return cls(
            valid=[(m, r.to_bytes()) for m, r in verdict.valid],
            reading_ids=[r.reading_id for _, r in verdict.valid],
            sensor_ids=[r.sensor_id for _, r in verdict.valid],
            invalid=verdict.invalid,
        )


@dataclass
class WirePath:
    """The columnar path of one ``ReadingValidator``: its profile's features, and the screen,
    batch context and recent ids it shares with the validator's reference path."""

    features: list[str]
    max_message_bytes: int
    stage: str
    deduplicates: bool
    recent: RecentIds
    context: BatchContext
    screen: Screen
    values_row: Callable[[dict[str, float]], Sequence[float]]
    clock: Callable[[], datetime]
    decoder: ColumnDecoder = field(init=False)

    def __post_init__(self) -> None:
        self.decoder = ColumnDecoder(self.features, self.max_message_bytes)

    def validate(self, messages: Sequence[Message]) -> WireVerdict:
        """The verdict of ``ReadingValidator.validate``, computed on columns: the batch is
        decoded once into arrays (``driftline.validation.columns``), checked with whole-array
        operations, reasons built only for the rows that fail, and valid readings forwarded as
        their own bytes with the reading id spliced in. Messages off the canonical shape are
        parsed one by one by ``parse_reading``, as ``ReadingValidator.validate`` parses all."""
        n = len(messages)
        raws = [m.value for m in messages]
        cols = self.decoder.decode(raws)
        sensor, ids, ts, values = cols.sensor_id, cols.reading_id, cols.ts, cols.values
        parsed: dict[int, ParsedReading] = {}
        fatal = np.zeros(n, dtype=bool)
        for i in np.flatnonzero(cols.slow).tolist():
            p = parsed[i] = parse_reading(raws[i], self.features, self.max_message_bytes)
            sensor[i], ids[i], fatal[i] = p.sensor_id, p.reading_id, p.fatal
            if not p.fatal:  # a fatal row's time may be out of range: the schema skips it
                ts[i] = NAT if p.ts is None else epoch_ns(p.ts)
                values[i] = self.values_row(p.values)
        rows = np.flatnonzero(~fatal)
        self.context.now = now = self.clock()
        failures = self.screen.reasons(
            Columns(
                sensor_id=[sensor[i] for i in rows] if len(rows) < n else sensor,
                ts=ts[rows],
                reading_id=[ids[i] for i in rows] if len(rows) < n else ids,
                values=values[rows],
            ),
            now,
            self.recent,
        )
        # Reasons, only for the rows that have some: parse problems, a key that is not the
        # sensor's, failed schema checks.
        reasons: dict[int, list[FailedCheck]] = {
            i: list(p.problems) for i, p in parsed.items() if p.problems
        }
        keys = [m.key for m in messages]
        # The key each sensor's readings should carry, encoded once per sensor of the batch.
        expected: dict[str | None, bytes | None] = {None: None}
        expected.update((s, s.encode()) for s in set(sensor) if s is not None)
        for i in [
            i
            for i, key, want in zip(range(n), keys, map(expected.__getitem__, sensor), strict=True)
            if key != want and key is not None and want is not None
        ]:
            reasons.setdefault(i, []).append(key_mismatch(keys[i], sensor[i]))  # type: ignore[arg-type]
        for r, schema in failures.items():
            i = int(rows[r])
            flagged = {f.column for f in reasons.get(i, ())}
            reasons.setdefault(i, []).extend(
                f for f in schema if not (f.check == "not_nullable" and f.column in flagged)
            )
        good = [i for i in range(n) if i not in reasons] if reasons else list(range(n))
        if self.deduplicates:
            good_ids = [ids[i] for i in good]
            if len(set(good_ids)) < len(good_ids):  # a reading twice in the batch: first wins
                accepted: set[str | None] = set()
                first = []
                for i, rid in zip(good, good_ids, strict=True):
                    if rid in accepted:
                        reasons[i] = [
                            FailedCheck(
                                check="not_duplicate",
                                column="reading_id",
                                detail="same sensor, ts and seq as an earlier reading",
                            )
                        ]
                    else:
                        accepted.add(rid)
                        first.append(i)
                good = first

        if any(ids[i] is None or not sensor[i] for i in good):
            # Passing every check implies these; a gap is a bug in the checks.
            raise DriftlineError("a reading that passed every check has no identity")
        out = {i: _reference_bytes(parsed[i], ids[i]) for i in good if i in parsed}
        missing = cols.missing
        verdict = WireVerdict()
        verdict.valid = [
            (
                messages[i],
                out[i] if i in out else valid_payload(raws[i], ids[i], missing[i]),  # type: ignore[arg-type]
            )
            for i in good
        ]
        verdict.reading_ids = [ids[i] for i in good]  # type: ignore[misc]
        verdict.sensor_ids = [sensor[i] for i in good]  # type: ignore[misc]
        verdict.invalid = [
            (messages[i], dead_letter(messages[i], self.stage, reasons[i], sensor[i]))
            for i in sorted(reasons)
        ]
        return verdict


def _reference_bytes(reading: ParsedReading, rid: str | None) -> bytes:
    """The ValidReading JSON of a reading parsed by ``parse_reading``."""
    return reading.valid(rid).to_bytes()
