"""The numpy screen and the pandera reading schema agree on which rows fail, on generated
batches: the validator may skip pandera for rows the screen passes."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pandera.errors as pa_errors
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.core.profile import load_profile
from driftline.core.settings import DEFAULT_PROFILE
from driftline.validation.schema import (
    READING_ID,
    SENSOR_ID,
    TS,
    BatchContext,
    build_reading_schema,
)
from driftline.validation.screen import NAT, Columns, Screen
from tests.unit.factories import NORMAL_VALUES, NOW

PROFILE = load_profile(DEFAULT_PROFILE)
SEEN = frozenset({"seen-1", "seen-2"})

sensors = st.sampled_from(["pump-001", "skab-7", "toaster", "", "PUMP-1", "pump-"])
offsets = st.one_of(
    st.floats(-8 * 86400, 600, allow_nan=False),
    st.sampled_from([-7 * 86400.0, 300.0, 300.001, -7 * 86400 - 0.001]),
)
ids = st.sampled_from(["fresh-1", "fresh-2", "seen-1", "seen-2", None])
measurement = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-50, 1100),
    st.sampled_from([0.0, -5.0, 10.0, 200.0, 1000.0]),
)
rows = st.fixed_dictionaries(
    {
        SENSOR_ID: sensors,
        TS: st.one_of(st.none(), offsets),
        READING_ID: ids,
        "values": st.dictionaries(st.sampled_from(PROFILE.features), measurement),
    }
)


def columns_of(batch: list[dict]) -> Columns:
    return Columns(
        sensor_id=[r[SENSOR_ID] for r in batch],
        ts=np.array(
            [
                NAT if r[TS] is None else pd.Timestamp(NOW + timedelta(seconds=r[TS])).value
                for r in batch
            ],
            dtype=np.int64,
        ),
        reading_id=[r[READING_ID] for r in batch],
        values=np.array(
            [[r["values"].get(f, NORMAL_VALUES[f]) for f in PROFILE.features] for r in batch],
            dtype=float,
        ),
    )


def pandera_failures(frame: pd.DataFrame) -> set[int]:
    schema = build_reading_schema(PROFILE, BatchContext(now=NOW, seen_ids=SEEN))
    try:
        schema.validate(frame, lazy=True)
    except pa_errors.SchemaErrors as exc:
        return {int(i) for i in exc.failure_cases["index"].dropna()}
    return set()


@settings(max_examples=150, deadline=None)
@given(st.lists(rows, min_size=1, max_size=30))
def test_the_screen_flags_exactly_the_rows_the_schema_fails(batch: list[dict]) -> None:
    columns = columns_of(batch)
    flagged = Screen(PROFILE).flagged(columns, NOW, SEEN)
    every_row = np.arange(len(batch))
    assert set(np.flatnonzero(flagged)) == pandera_failures(
        columns.frame(PROFILE.features, every_row)
    )


def test_a_clean_batch_is_not_flagged() -> None:
    batch = [
        {SENSOR_ID: f"pump-{i:03d}", TS: -i, READING_ID: f"r{i}", "values": {}} for i in range(50)
    ]
    assert not Screen(PROFILE).flagged(columns_of(batch), NOW, SEEN).any()
