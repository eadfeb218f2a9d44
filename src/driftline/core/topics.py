"""Topic names: the one place they are spelled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload


class Topic:
    """A topic of ``Topics``: its name is the prefix, a dot, then ``suffix``. Formatted at the
    first access and kept in the instance, whose attribute then wins over this (non-data)
    descriptor: services read topic names for every record they produce."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.attribute = ""

    def __set_name__(self, owner: type[Topics], name: str) -> None:
        self.attribute = name

    @overload
    def __get__(self, topics: None, owner: type[Topics]) -> Topic: ...
    @overload
    def __get__(self, topics: Topics, owner: type[Topics]) -> str: ...
    def __get__(self, topics: Topics | None, owner: type[Topics]) -> Topic | str:
        if topics is None:
            return self
        name = f"{topics.prefix}.{self.suffix}"
        vars(topics)[self.attribute] = name  # past the frozen dataclass: a cache, not a field
        return name


@dataclass(frozen=True)
class Topics:
    prefix: str = "driftline"

    raw_readings = Topic("readings.raw")
    """Readings as sensors publish them (JSON, key = sensor id)."""
    valid_readings = Topic("readings.valid")
    """Readings that passed validation (ValidReading)."""
    dead_letter = Topic("readings.deadletter")
    """Messages that failed validation, with the reasons (DeadLetter)."""
    drift_events = Topic("drift.events")
    """One DriftEvent per closed window."""
    retrain_requests = Topic("retrain.requests")
    """RetrainRequest, published when the trigger fires."""
    model_promotions = Topic("models.promoted")
    """ModelPromoted, published when a new champion takes over."""
    predictions = Topic("predictions")
    """Prediction, one per reading serving scored (when publishing is on)."""
    labels = Topic("labels")
    """LabelRecorded, one per operator label from Label Studio (key: sensor id)."""
    labelled_performance = Topic("labels.performance")
    """LabelledPerformance, the production model scored against labels (key: version)."""

    def all(self) -> list[str]:
        """Every topic's name, in the order declared above."""
        return [
            getattr(self, name) for name, value in vars(Topics).items() if isinstance(value, Topic)
        ]
