"""Fixtures of the unit tests: the packaged profile, a fixed clock, message factories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from driftline.core.profile import Profile, load_profile
from driftline.core.settings import DEFAULT_PROFILE
from driftline.validation.batch import ReadingValidator
from tests.unit.factories import NOW


@pytest.fixture(scope="session")
def profile() -> Profile:
    return load_profile(DEFAULT_PROFILE)


@pytest.fixture
def make_validator(profile: Profile) -> Callable[..., ReadingValidator]:
    """A validator whose clock stands still at ``NOW`` (or at the ``now`` given)."""

    def make(now: datetime = NOW, **kwargs: object) -> ReadingValidator:
        return ReadingValidator(profile, clock=lambda: now, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def validator(make_validator: Callable[..., ReadingValidator]) -> ReadingValidator:
    return make_validator()


@pytest.fixture(scope="session")
def skab_normal(skab_dir: Path) -> pd.DataFrame:
    """SKAB's anomaly-free recording, measurement columns only."""
    frame = pd.read_csv(skab_dir / "anomaly-free" / "anomaly-free.csv", sep=";")
    return frame.drop(columns="datetime")
