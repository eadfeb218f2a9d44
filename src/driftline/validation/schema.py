"""The reading schema, built from a profile, as a pandera DataFrameSchema.

The validator, the pipeline's preprocess step and serving all check readings with this one
schema, so the three cannot disagree on what a valid reading is.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pa

from driftline.core.profile import Profile

SENSOR_ID = "sensor_id"
TS = "ts"
READING_ID = "reading_id"


@dataclass
class BatchContext:
    """What the schema's checks compare against; the caller sets it before each batch."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    seen_ids: Container[str] = frozenset()


def _finite(series: pd.Series) -> pd.Series:
    # NaN is reported by the not-null check; this one only flags +/-inf.
    return ~series.isin((np.inf, -np.inf))


def build_reading_schema(profile: Profile, context: BatchContext) -> pa.DataFrameSchema:
    """Schema of one micro-batch: one row per parsed reading, one float column per measurement.

    The schema is built once; ``context`` supplies the current time (for the timestamp
    window) and the reading ids accepted earlier (so a reading sent twice is a duplicate).
    """
    policy = profile.timestamps

    def not_in_future(s: pd.Series) -> pd.Series:
        return s <= pd.Timestamp(context.now + timedelta(seconds=policy.max_future_seconds))

    def not_too_old(s: pd.Series) -> pd.Series:
        return s >= pd.Timestamp(context.now - timedelta(seconds=policy.max_age_seconds))

    def not_duplicate(s: pd.Series) -> pd.Series:
        # Repeats inside one batch are settled after the schema (ReadingValidator), among
        # the readings that pass everything else: a rejected reading must not shadow its
        # corrected resend.
        return ~s.map(context.seen_ids.__contains__).astype(bool)

    columns: dict[str, pa.Column] = {
        SENSOR_ID: pa.Column(
            str,
            nullable=False,
            checks=pa.Check(
                lambda s: s.map(profile.is_known_sensor).astype(bool),
                name="known_sensor",
            ),
        ),
        TS: pa.Column(
            pd.DatetimeTZDtype(tz="UTC"),
            nullable=False,
            checks=[
                pa.Check(
                    not_in_future,
                    name="not_in_future",
                ),
                pa.Check(not_too_old, name="not_too_old"),
            ],
        ),
        READING_ID: pa.Column(
            str,
            nullable=False,
            checks=pa.Check(
                not_duplicate,
                name="not_duplicate",
            ),
        ),
    }
    for name, m in profile.measurements.items():
        columns[name] = pa.Column(
            "float64",
            nullable=False,
            checks=[
                pa.Check(_finite, name="finite"),
                pa.Check(
                    lambda s, lo=m.min, hi=m.max: (
                        ((s >= lo) & (s <= hi)) | s.isin((np.inf, -np.inf))
                    ),
                    name="in_range",
                ),
            ],
        )
    return pa.DataFrameSchema(columns, strict=False, coerce=False, name=profile.name)


def describe_failure(profile: Profile, check: str, column: str | None, value: object) -> str:
    """A sentence for a dead letter: what the value was and what the check wanted."""
    policy = profile.timestamps
    m = profile.measurements.get(column or "")
    match check:
        case "not_nullable":
            return "missing or NaN"
        case "finite":
            return f"{value} is not finite"
        case "in_range" if m is not None:
            return f"{value} outside [{m.min:g}, {m.max:g}] {m.unit}"
        case "known_sensor":
            return f"{value!r} matches none of {profile.sensors}"
        case "not_in_future":
            return f"{value} is more than {policy.max_future_seconds:g}s in the future"
        case "not_too_old":
            return f"{value} is older than {policy.max_age_seconds:g}s"
        case "not_duplicate":
            return "same sensor, ts and seq as an earlier reading"
    return f"{value!r} failed {check}"
