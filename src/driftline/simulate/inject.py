"""Faults the simulator can inject: drift in the signal, and malformed messages."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Literal

from driftline.simulate.signals import PUMP_STATS

DriftKind = Literal["shift", "scale", "noise", "stuck", "new-sensor"]
DRIFT_KINDS: tuple[str, ...] = ("shift", "scale", "noise", "stuck", "new-sensor")


@dataclass
class DriftInjection:
    """From ``at_seconds`` of simulated time on, change the signal of ``features``.

    shift: add magnitude x std; scale: multiply by (1 + magnitude); noise: add gaussian noise
    of magnitude x std; stuck: repeat the last value (a flatlined sensor); new-sensor: the
    readings come from a sensor id the profile does not know.
    """

    kind: DriftKind
    at_seconds: float
    features: list[str]
    magnitude: float = 2.0
    seed: int = 0
    _stuck: dict[str, float] = field(default_factory=dict, init=False)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # nosec B311  # simulated data, not security

    def active(self, t: float) -> bool:
        return t >= self.at_seconds

    def apply(self, t: float, values: dict[str, float]) -> dict[str, float]:
        if not self.active(t) or self.kind == "new-sensor":
            if self.kind == "stuck":
                self._stuck = dict(values)
            return values
        out = dict(values)
        for f in self.features:
            std = PUMP_STATS.get(f, (0.0, 1.0, 0.0))[1]
            if self.kind == "shift":
                out[f] = values[f] + self.magnitude * std
            elif self.kind == "scale":
                out[f] = values[f] * (1 + self.magnitude)
            elif self.kind == "noise":
                out[f] = values[f] + self._rng.gauss(0.0, self.magnitude * std)
            elif self.kind == "stuck":
                out[f] = self._stuck.get(f, values[f])
        return out

    def sensor_id(self, t: float, sensor_id: str) -> str:
        if self.kind == "new-sensor" and self.active(t):
            return f"unregistered-{sensor_id}"
        return sensor_id


MALFORMED_KINDS = (
    "not-json",
    "not-object",
    "missing-field",
    "wrong-type",
    "nan",
    "out-of-range",
    "future-ts",
    "unknown-sensor",
)


def malform(
    kind: str, reading: dict[str, object], features: list[str], rng: random.Random
) -> bytes:
    """A corrupted version of ``reading`` that validation must reject."""
    doc = json.loads(json.dumps(reading))
    values = doc["values"]
    if not isinstance(values, dict):
        raise TypeError(f"a reading's values must be an object, not {type(values).__name__}")
    feature = rng.choice(features)
    if kind == "not-json":  # cut short; its time keeps it a message of its own
        head = {"sensor_id": doc["sensor_id"], "ts": doc["ts"]}
        return json.dumps(head).encode()[:-1] + b', "values": {'
    if kind == "not-object":
        return json.dumps([doc["sensor_id"], doc["ts"]]).encode()
    if kind == "missing-field":
        del doc[rng.choice(["ts", "values"])]
    elif kind == "wrong-type":
        values[feature] = "n/a"
    elif kind == "nan":
        values[feature] = float("nan") if rng.random() < 0.5 else float("inf")
    elif kind == "out-of-range":
        values[feature] = -1e9
    elif kind == "future-ts":
        doc["ts"] = "2999-01-01T00:00:00Z"
    elif kind == "unknown-sensor":
        doc["sensor_id"] = f"ghost-{doc['sensor_id']}"
    else:
        raise ValueError(f"unknown malformed kind {kind!r}")
    return json.dumps(doc).encode()
