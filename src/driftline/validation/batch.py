"""Micro-batch validation: parse every message, run the schema once per batch, sort the results.

Pure logic: no Kafka, no database. The validator service feeds it batches and publishes what
it returns.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pandera.errors as pa_errors

from driftline.core.profile import Profile
from driftline.core.recent_ids import RecentIds
from driftline.core.records import DeadLetter, FailedCheck, ValidReading, epoch_ns
from driftline.streaming.dead_letters import dead_letter
from driftline.streaming.messages import Message
from driftline.validation.parsing import ParsedReading, key_mismatch, parse_reading
from driftline.validation.schema import (
    BatchContext,
    build_reading_schema,
    describe_failure,
)
from driftline.validation.screen import NAT, Columns, Screen
from driftline.validation.wire import WirePath, WireVerdict

log = logging.getLogger(__name__)


@dataclass
class BatchVerdict:
    valid: list[tuple[Message, ValidReading]] = field(default_factory=list)
    invalid: list[tuple[Message, DeadLetter]] = field(default_factory=list)


class ReadingValidator:
    """Validates micro-batches of raw messages against a profile's reading schema."""

    def __init__(
        self,
        profile: Profile,
        *,
        max_message_bytes: int = 64 * 1024,
        dedup_capacity: int = 500_000,
        stage: str = "validator",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.profile = profile
        self.features = profile.features
        self.max_message_bytes = max_message_bytes
        self.stage = stage
        self.clock = clock
        # Serving passes 0: a client may send a reading again, and two clients the same one.
        self.deduplicates = dedup_capacity > 0
        self.recent = RecentIds(dedup_capacity)
        self._context = BatchContext(seen_ids=self.recent)
        self._schema = build_reading_schema(profile, self._context)
        self._screen = Screen(profile)
        self._get_values = operator.itemgetter(*self.features)
        self._wire = WirePath(
            features=self.features,
            max_message_bytes=max_message_bytes,
            stage=stage,
            deduplicates=self.deduplicates,
            recent=self.recent,
            context=self._context,
            screen=self._screen,
            values_row=self._values_row,
            clock=clock,
        )
        self._decoder = self._wire.decoder
        self._key_of: dict[str, bytes] = {}

    def validate(self, messages: Sequence[Message]) -> BatchVerdict:
        parsed = [parse_reading(m.value, self.features, self.max_message_bytes) for m in messages]
        ids = [p.reading_id for p in parsed]  # a hash each: computed once
        rows = [i for i, p in enumerate(parsed) if not p.fatal]
        row_of = {position: row for row, position in enumerate(rows)}
        schema_failures = self._run_schema([parsed[i] for i in rows], [ids[i] for i in rows])

        verdict = BatchVerdict()
        accepted: set[str] = set()
        for position, (message, reading, rid) in enumerate(zip(messages, parsed, ids, strict=True)):
            reasons = list(reading.problems)
            if message.key is not None and reading.sensor_id is not None:
                mismatch = key_mismatch(message.key, reading.sensor_id)
                if mismatch is not None:
                    reasons.append(mismatch)
            failures = schema_failures.get(row_of.get(position, -1)) if schema_failures else None
            if failures and not reading.fatal:
                flagged = {r.column for r in reasons}
                reasons += [
                    r
                    for r in failures
                    # A value that failed to parse is NaN in the frame; its not-null
                    # failure says nothing new.
                    if not (r.check == "not_nullable" and r.column in flagged)
                ]
            if not reasons and self.deduplicates and rid in accepted:
                reasons = [
                    FailedCheck(
                        check="not_duplicate",
                        column="reading_id",
                        detail="same sensor, ts and seq as an earlier reading",
                    )
                ]
            if reasons:
                verdict.invalid.append((message, self._dead_letter(message, reading, reasons)))
            else:
                valid = reading.valid(rid)
                accepted.add(valid.reading_id)
                verdict.valid.append((message, valid))
        return verdict

    def validate_wire(self, messages: Sequence[Message]) -> WireVerdict:
        """The verdict of ``validate``, computed on columns (``driftline.validation.wire``);
        ``tests/unit/test_wire_verdict.py`` holds the two verdicts equal."""
        return self._wire.validate(messages)

    def validate_wire_isolating_errors(self, messages: Sequence[Message]) -> WireVerdict:
        """``validate_wire``; if it fails, ``validate_isolating_errors`` (one message at a
        time if need be), so a message that breaks validation is dead-lettered alone."""
        try:
            return self.validate_wire(messages)
        except Exception:
            log.exception("columnar validation of a batch of %d failed", len(messages))
        return WireVerdict.of(self.validate_isolating_errors(messages))

    def remember_wire(self, verdict: WireVerdict) -> None:
        """``remember`` for a ``WireVerdict``."""
        self.recent.add_all(verdict.reading_ids)

    def forget_wire(self, verdict: WireVerdict) -> None:
        """Undo ``remember_wire``: the verdict's valid readings were not published after all,
        and the batch is validated again (it must not find its own readings seen)."""
        self.recent.discard_all(verdict.reading_ids)

    def validate_isolating_errors(self, messages: Sequence[Message]) -> BatchVerdict:
        """Like ``validate``, but a message that makes validation itself fail is dead-lettered
        (reason ``internal_error``) instead of stalling its whole batch forever."""
        try:
            return self.validate(messages)
        except Exception:
            log.exception(
                "validation of a batch of %d failed; isolating the culprit", len(messages)
            )
        verdict = BatchVerdict()
        for message in messages:
            try:
                one = self.validate([message])
            except Exception as exc:
                reason = FailedCheck(
                    check="internal_error", detail=f"{type(exc).__name__}: {exc}"[:300]
                )
                one = BatchVerdict(invalid=[(message, self._dead_letter(message, None, [reason]))])
            verdict.valid += one.valid
            verdict.invalid += one.invalid
        return verdict

    def remember(self, verdict: BatchVerdict) -> None:
        """Mark the verdict's valid readings as seen, once they are safely published.

        Done apart from ``validate`` so that a batch retried after a failed publish is not
        mistaken for duplicates of itself.
        """
        for _, reading in verdict.valid:
            self.recent.add(reading.reading_id)

    def _run_schema(
        self, readings: list[ParsedReading], ids: list[str | None]
    ) -> dict[int, list[FailedCheck]]:
        """Row position (among ``readings``, whose reading ids are ``ids``) -> the schema
        checks it failed."""
        if not readings:
            return {}
        return self._check(
            Columns(
                sensor_id=[r.sensor_id for r in readings],
                ts=np.array(
                    [NAT if r.ts is None else epoch_ns(r.ts) for r in readings], dtype=np.int64
                ),
                reading_id=ids,
                values=np.array(
                    [self._values_row(r.values) for r in readings], dtype="float64"
                ).reshape(len(readings), len(self.features)),
            )
        )

    def _check(self, batch: Columns) -> dict[int, list[FailedCheck]]:
        """Row position in ``batch`` -> the schema checks it failed (numpy screen first,
        pandera on the rows it flags)."""
        if not len(batch.ts):
            return {}
        self._context.now = self.clock()
        flagged = np.flatnonzero(self._screen.flagged(batch, self._context.now, self.recent))
        if not len(flagged):
            return {}
        try:
            self._schema.validate(batch.frame(self.features, flagged), lazy=True)
        except pa_errors.SchemaErrors as exc:
            return _failures_by_row(self.profile, exc.failure_cases)
        return {}

    def _values_row(self, values: dict[str, float]) -> Sequence[float]:
        """The measurements in profile order, NaN where missing."""
        if len(values) == len(self.features):  # almost always: one C call does it
            try:
                got = self._get_values(values)
            except KeyError:
                pass
            else:
                return got if len(self.features) > 1 else (got,)
        return [values.get(f, np.nan) for f in self.features]

    def _dead_letter(
        self, message: Message, reading: ParsedReading | None, reasons: list[FailedCheck]
    ) -> DeadLetter:
        return dead_letter(message, self.stage, reasons, reading.sensor_id if reading else None)


def _failures_by_row(profile: Profile, cases: pd.DataFrame) -> dict[int, list[FailedCheck]]:
    out: dict[int, list[FailedCheck]] = {}
    for index, column, check, value in zip(
        cases["index"], cases["column"], cases["check"], cases["failure_case"], strict=True
    ):
        if index is None or (isinstance(index, float) and np.isnan(index)):
            continue  # a frame-level failure (e.g. a dtype) with no row: rows show it too
        name = str(check).split("(")[0]
        col = None if column is None else str(column)
        detail = describe_failure(profile, name, col, value)
        out.setdefault(int(index), []).append(FailedCheck(check=name, column=col, detail=detail))
    return out
