"""Schema profiles: which measurements a fleet reports, their units and valid ranges."""

from __future__ import annotations

import fnmatch
import re
from functools import cached_property
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from driftline.core.errors import ProfileError


class Measurement(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    unit: str
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Measurement:
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        return self


class TimestampPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    max_future_seconds: float = Field(300, ge=0)
    max_age_seconds: float = Field(7 * 24 * 3600, gt=0)


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    description: str = ""
    sensors: list[str] = Field(min_length=1, description="Shell-style patterns of known ids")
    timestamps: TimestampPolicy = TimestampPolicy()
    measurements: dict[str, Measurement] = Field(min_length=1)

    @property
    def features(self) -> list[str]:
        return list(self.measurements)

    @cached_property
    def _sensor_regex(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in self.sensors))

    def is_known_sensor(self, sensor_id: str) -> bool:
        return self._sensor_regex.fullmatch(sensor_id) is not None


def load_profile(path: Path) -> Profile:
    try:
        data = yaml.safe_load(Path(path).read_text())
        return Profile.model_validate(data)
    except FileNotFoundError as exc:
        raise ProfileError(f"profile file not found: {path}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise ProfileError(f"invalid profile {path}: {exc}") from exc
