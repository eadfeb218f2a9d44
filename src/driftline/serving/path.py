"""Serving's scoring path, without BentoML: tagged wire-format readings in, a Prediction or the
failed checks per reading out. The BentoML scorer runs it on each adaptive batch: the batch is
validated as columns (``driftline.serving_readings``), and the same columns give the model
inputs (``SensorHistory.inputs``).

A batch may hold readings of several requests (each item is tagged with its request). A
request with any invalid reading is rejected whole: none of its readings is scored or
remembered, and its valid ones come back with no reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel

from driftline.anomaly.bundle import READY, Scored
from driftline.core.profile import Profile
from driftline.core.records import FailedCheck, Prediction, ValidReading, as_utc, utcnow
from driftline.core.state_changes import StateChanges
from driftline.core.valid_topic import WireValidReading
from driftline.serving import metrics as serving_metrics
from driftline.serving.history import HistoryStore, HistoryUnavailable, SensorHistory
from driftline.serving.readings import BatchChecker, CheckedBatch
from driftline.validation.batch import ReadingValidator

STAGE = "serving"
REQUEST = "request"
READING = "reading"
UNAVAILABLE = "unavailable"
PROBABILITY = "anomaly_probability"

log = logging.getLogger(__name__)


class Model(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    def anomaly_probabilities(self, inputs: pd.DataFrame) -> np.ndarray: ...


def _scored(model: Model, checked: CheckedBatch, history: SensorHistory) -> list[Scored]:
    """The model's outcome per reading. A model of the anomaly families scores the batch's
    columns against each sensor's baseline (``score_columns``); one of before them (its
    ``score_columns`` answers None) or a test's stand-in scores the rolling-feature inputs,
    which are computed for it alone."""
    score_columns = getattr(model, "score_columns", None)
    if score_columns is not None:
        scored = score_columns(checked.sensor_ids, checked.stamps, checked.values, history.features)
        if scored is not None:
            return list(scored)
    inputs = history.inputs(checked.sensor_ids, checked.stamps, checked.values)
    return [Scored(float(p), READY, None) for p in model.anomaly_probabilities(inputs)]


class ServingPath:
    def __init__(
        self,
        profile: Profile,
        *,
        feature_window: int,
        threshold: float,
        max_message_bytes: int,
        model: Callable[[], Model | None],
        publish: Callable[[list[Prediction]], None] | None = None,
        history: HistoryStore | None = None,
    ) -> None:
        self.validator = ReadingValidator(
            profile, max_message_bytes=max_message_bytes, dedup_capacity=0, stage=STAGE
        )
        self.checker = BatchChecker(self.validator, STAGE)
        self.history = SensorHistory(profile.features, feature_window, history)
        self.threshold = threshold
        self.model = model
        self.publish = publish
        self.state = StateChanges(log, "scoring")

    def score(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per item ``{"request": id, "reading": <decoded JSON>}``: a Prediction as JSON, or
        ``{"reasons": [...]}`` (empty for a valid reading of a rejected request), or, for
        every item, ``{"unavailable": why}`` when nothing can be scored now."""
        model = self.model()  # read once: this batch finishes on it whatever a swap does
        if model is None:
            return self._unavailable(items, "no champion model is loaded yet")
        checked = self.checker.check([item.get(READING) for item in items])
        out: list[dict[str, Any]] = [{"reasons": []} for _ in items]
        rejected = set()
        for i, reasons in checked.reasons.items():
            out[i] = {"reasons": reasons}
            rejected.add(items[i].get(REQUEST))
        if rejected:
            checked = checked.keep(
                [
                    row
                    for row, i in enumerate(checked.positions)
                    if items[i].get(REQUEST) not in rejected
                ]
            )
        if not checked.positions:
            return out
        try:
            scored = _scored(model, checked, self.history)
        except HistoryUnavailable as exc:
            return self._unavailable(items, str(exc), traceback=True)
        self.state.ok("scoring again")
        predictions = self._answers(model, checked, scored)
        for i, prediction in zip(checked.positions, predictions, strict=True):
            out[i] = prediction
        pending = sum(s.probability is None for s in scored)
        if pending:
            serving_metrics.baseline_pending.inc(pending)
        if self.publish is not None:
            # Monitoring and labelling work on scores: a pending prediction has none.
            self.publish(
                [Prediction.model_validate(p) for p in predictions if p[PROBABILITY] is not None]
            )
        return out

    def score_valid(
        self, readings: Sequence[ValidReading | WireValidReading]
    ) -> list[dict[str, Any]] | None:
        """The predictions ``score`` makes, as JSON, of readings the validator passed (the
        valid-readings topic), without checking them again; None while no model is loaded.
        Nothing is published."""
        model = self.model()
        if model is None:
            return None
        checked = CheckedBatch.of_valid(readings, self.checker.features)
        return self._answers(model, checked, _scored(model, checked, self.history))

    def _answers(
        self, model: Model, checked: CheckedBatch, scored: list[Scored]
    ) -> list[dict[str, Any]]:
        """``as_json(Prediction(...))`` of each scored reading, made as plain dicts (a
        pydantic record per reading cost as much as the reading's features); the one check
        the record made, a probability within [0, 1], is made on the batch."""
        probabilities = np.array([s.probability for s in scored], dtype="float64")
        known = probabilities[~np.isnan(probabilities)]
        if not ((known >= 0) & (known <= 1)).all():
            raise ValueError(f"the model gave probabilities outside [0, 1]: {known}"[:300])
        family = getattr(model, "family", None)
        now = _iso(utcnow())
        threshold = self.threshold
        return [
            {
                "v": 1,
                "reading_id": reading,
                "sensor_id": sensor,
                "ts": _iso(ts),
                "seq": seq,
                PROBABILITY: s.probability,
                "label": None if s.probability is None else int(s.probability >= threshold),
                "model_name": model.name,
                "model_version": model.version,
                "predicted_at": now,
                "family": family,
                "baseline": s.baseline,
                "baseline_version": s.baseline_version,
            }
            for reading, sensor, ts, seq, s in zip(
                checked.reading_ids,
                checked.sensor_ids,
                checked.times,
                checked.seqs,
                scored,
                strict=True,
            )
        ]

    def _unavailable(
        self, items: Sequence[Any], why: str, traceback: bool = False
    ) -> list[dict[str, Any]]:
        self.state.failing(f"answering 503: {why}", traceback=traceback)
        return [{UNAVAILABLE: why} for _ in items]


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat(timespec="microseconds").replace("+00:00", "Z")


def as_json(record: BaseModel) -> dict[str, Any]:
    """``record.model_dump(mode="json")`` of a record of plain fields, in a fraction of the
    time: the python dump does not call the records' per-field serializer, which only
    rewrites times."""
    out = record.model_dump()
    for name, value in out.items():
        if type(value) is datetime:
            out[name] = _iso(value)
    return out


def tag(items: Sequence[Any], request: str) -> list[dict[str, Any]]:
    return [{REQUEST: request, READING: item} for item in items]


class RejectedRequest(ValueError):
    """A request held invalid readings: every reason, by reading index."""

    def __init__(self, reasons: dict[int, list[dict[str, Any]]]) -> None:
        super().__init__(f"{len(reasons)} invalid reading(s)")
        self.reasons = reasons

    @classmethod
    def one(cls, check: str, detail: str) -> RejectedRequest:
        return cls({0: [FailedCheck(check=check, detail=detail).model_dump(mode="json")]})

    def as_json(self) -> dict[str, Any]:
        return {
            "error": "invalid readings: nothing was scored",
            "readings": [
                {"index": i, "reasons": reasons} for i, reasons in sorted(self.reasons.items())
            ],
        }


class Unavailable(RuntimeError):
    """Nothing can be scored now (503); the message says why."""


def answers(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The predictions of one request's results, or RejectedRequest with its reasons, or
    Unavailable."""
    for result in results:
        if UNAVAILABLE in result:
            raise Unavailable(str(result[UNAVAILABLE]))
    reasons = {i: r["reasons"] for i, r in enumerate(results) if r.get("reasons")}
    if reasons:
        raise RejectedRequest(reasons)
    return list(results)


def checked_items(body: Any, max_readings: int) -> list[Any]:
    """The readings of a request body (one reading or a list), or RejectedRequest."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise RejectedRequest.one("not_empty", "the request holds no reading")
    if len(items) > max_readings:
        raise RejectedRequest.one(
            "too_many", f"{len(items)} readings; at most {max_readings} a request"
        )
    return items
