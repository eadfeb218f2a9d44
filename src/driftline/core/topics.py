"""Topic names: the one place they are spelled."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str = "driftline"

    @property
    def raw_readings(self) -> str:
        """Readings as sensors publish them (JSON, key = sensor id)."""
        return f"{self.prefix}.readings.raw"

    @property
    def valid_readings(self) -> str:
        """Readings that passed validation (ValidReading)."""
        return f"{self.prefix}.readings.valid"

    @property
    def dead_letter(self) -> str:
        """Messages that failed validation, with the reasons (DeadLetter)."""
        return f"{self.prefix}.readings.deadletter"

    @property
    def drift_events(self) -> str:
        """One DriftEvent per closed window."""
        return f"{self.prefix}.drift.events"

    @property
    def retrain_requests(self) -> str:
        """RetrainRequest, published when the trigger fires."""
        return f"{self.prefix}.retrain.requests"

    @property
    def model_promotions(self) -> str:
        """ModelPromoted, published when a new champion takes over."""
        return f"{self.prefix}.models.promoted"

    @property
    def predictions(self) -> str:
        """Prediction, one per reading serving scored (when publishing is on)."""
        return f"{self.prefix}.predictions"

    @property
    def labels(self) -> str:
        """LabelRecorded, one per operator label from Label Studio (key: sensor id)."""
        return f"{self.prefix}.labels"

    @property
    def labelled_performance(self) -> str:
        """LabelledPerformance, the production model scored against labels (key: version)."""
        return f"{self.prefix}.labels.performance"

    def all(self) -> list[str]:
        return [
            self.raw_readings,
            self.valid_readings,
            self.dead_letter,
            self.drift_events,
            self.retrain_requests,
            self.model_promotions,
            self.predictions,
            self.labels,
            self.labelled_performance,
        ]
