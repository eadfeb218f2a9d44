"""The serving request path's pure logic: wire-format readings in, checked readings and their
model inputs out. No BentoML here, so it is tested like any function.

Readings are checked by ``ReadingValidator`` (the validator service's schema) with dedup off:
a client may resend a reading and get the same answer. Features come from
``driftline.training.features.add_features`` over each sensor's last ``feature_window``
readings, the function training uses.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import orjson
import pandas as pd

from driftline.messages import Message
from driftline.profile import Profile
from driftline.records import FailedCheck, ValidReading
from driftline.schema import SENSOR_ID, TS
from driftline.training.features import add_features, feature_columns
from driftline.validation import ReadingValidator

STAGE = "serving"
_POSITION = "_position"


class RejectedReading(ValueError):
    """A request held readings that failed the schema: every reason, by reading index."""

    def __init__(self, reasons: dict[int, list[FailedCheck]]) -> None:
        super().__init__(f"{len(reasons)} invalid reading(s)")
        self.reasons = reasons

    def as_json(self) -> dict[str, Any]:
        return {
            "error": "invalid readings: nothing was scored",
            "readings": [
                {"index": i, "reasons": [r.model_dump(mode="json") for r in reasons]}
                for i, reasons in sorted(self.reasons.items())
            ],
        }


def check_readings(validator: ReadingValidator, items: Sequence[Any]) -> list[ValidReading]:
    """Validate each item (one decoded JSON value); all valid, in order, or RejectedReading."""
    if not items:
        raise RejectedReading(
            {0: [FailedCheck(check="not_empty", detail="the request holds no reading")]}
        )
    messages = [
        Message(STAGE, 0, i, None, orjson.dumps(item, option=orjson.OPT_SERIALIZE_NUMPY))
        for i, item in enumerate(items)
    ]
    verdict = validator.validate(messages)
    if verdict.invalid:
        raise RejectedReading({m.offset: list(d.reasons) for m, d in verdict.invalid})
    return [reading for _, reading in sorted(verdict.valid, key=lambda v: v[0].offset)]


class SensorHistory:
    """Each sensor's last ``window`` readings, from which a new reading's features come."""

    def __init__(self, features: list[str], window: int) -> None:
        self.features = features
        self.window = window
        self.columns = feature_columns(features)
        self._recent: dict[str, deque[dict[str, Any]]] = {}

    def model_inputs(self, readings: Sequence[ValidReading]) -> pd.DataFrame:
        """The model's input rows for ``readings`` (in their order), after which each sensor's
        history holds them too. A sensor's readings are taken in ts order, as in training."""
        rows = [
            {SENSOR_ID: r.sensor_id, TS: pd.Timestamp(r.ts), **r.values, _POSITION: i}
            for i, r in enumerate(readings)
        ]
        past = [row for s in {r.sensor_id for r in readings} for row in self._recent.get(s, ())]
        frame = pd.DataFrame([*past, *rows], columns=[SENSOR_ID, TS, *self.features, _POSITION])
        featured = add_features(frame, self.features, self.window)
        new = featured[featured[_POSITION].notna()]
        for sensor, group in new.groupby(SENSOR_ID, sort=False):
            recent = self._recent.setdefault(str(sensor), deque(maxlen=self.window))
            # The frame is sorted by sensor and ts, so the last rows are the newest.
            recent.extend(
                {**row, _POSITION: None}
                for row in group[[SENSOR_ID, TS, *self.features]].to_dict("records")
            )
        ordered = new.sort_values(_POSITION)
        return ordered[self.columns].astype("float64").reset_index(drop=True)

    def sensors(self) -> int:
        return len(self._recent)


def make_validator(profile: Profile, max_message_bytes: int) -> ReadingValidator:
    return ReadingValidator(
        profile, max_message_bytes=max_message_bytes, dedup_capacity=0, stage=STAGE
    )
