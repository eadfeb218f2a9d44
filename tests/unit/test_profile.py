"""Schema profiles: the packaged SKAB profile, malformed profiles, sensor patterns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.core.errors import ConfigurationError, DriftlineError, ProfileError
from driftline.core.profile import Profile, load_profile
from driftline.core.settings import DEFAULT_PROFILE, Settings
from driftline.simulate.signals import PUMP_STATS

SKAB_COLUMNS = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]


def minimal() -> dict[str, Any]:
    return {
        "name": "test",
        "sensors": ["dev-*"],
        "measurements": {"temp": {"unit": "degC", "min": -10, "max": 50}},
    }


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_the_packaged_profile_loads(profile: Profile) -> None:
    assert Settings.model_fields["profile_path"].default == DEFAULT_PROFILE
    assert profile.name == "skab-water-pump"
    assert profile.features == SKAB_COLUMNS
    assert profile.sensors == ["pump-*", "skab-*"]
    assert profile.timestamps.max_future_seconds == 300
    assert profile.timestamps.max_age_seconds == 7 * 24 * 3600
    current = profile.measurements["Current"]
    assert (current.unit, current.min, current.max) == ("A", 0.0, 50.0)


def test_the_packaged_ranges_hold_skab_normal_data(profile: Profile, skab_normal) -> None:  # type: ignore[no-untyped-def]
    assert list(skab_normal.columns) == profile.features
    for name, m in profile.measurements.items():
        column = skab_normal[name]
        assert column.between(m.min, m.max).all(), name
        mean = PUMP_STATS[name][0]
        assert m.min < mean < m.max


def test_a_minimal_profile_gets_default_timestamp_policy(tmp_path: Path) -> None:
    loaded = load_profile(write(tmp_path, minimal()))
    assert loaded.features == ["temp"]
    assert loaded.description == ""
    assert loaded.timestamps.max_future_seconds == 300
    assert loaded.timestamps.max_age_seconds == 7 * 24 * 3600


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("name"),
        lambda d: d.pop("sensors"),
        lambda d: d.update(sensors=[]),
        lambda d: d.update(measurements={}),
        lambda d: d.update(colour="red"),
        lambda d: d["measurements"]["temp"].update(min=50),
        lambda d: d["measurements"]["temp"].update(min=60),
        lambda d: d["measurements"]["temp"].pop("unit"),
        lambda d: d["measurements"]["temp"].update(max="hot"),
        lambda d: d["measurements"]["temp"].update(typo=1),
        lambda d: d.update(timestamps={"max_age_seconds": 0}),
        lambda d: d.update(timestamps={"max_future_seconds": -1}),
        lambda d: d.update(timestamps={"max_skew": 5}),
    ],
    ids=[
        "no-name",
        "no-sensors",
        "empty-sensors",
        "no-measurements",
        "extra-key",
        "min-equals-max",
        "min-above-max",
        "no-unit",
        "non-numeric-max",
        "measurement-extra-key",
        "zero-max-age",
        "negative-future",
        "timestamps-extra-key",
    ],
)
def test_an_invalid_profile_raises_profile_error(tmp_path: Path, change: Any) -> None:
    data = minimal()
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ProfileError, match="invalid profile"):
        load_profile(path)


@pytest.mark.parametrize("text", ["name: [unclosed", "- just\n- a list\n", "", "42"])
def test_yaml_that_is_not_a_profile_raises_profile_error(tmp_path: Path, text: str) -> None:
    with pytest.raises(ProfileError):
        load_profile(write(tmp_path, text))


def test_a_missing_profile_file_raises_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not found") as info:
        load_profile(tmp_path / "absent.yaml")
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, DriftlineError)


def test_profiles_are_frozen(profile: Profile) -> None:
    with pytest.raises(ValueError):
        profile.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("patterns", "sensor_id", "known"),
    [
        (["pump-*"], "pump-001", True),
        (["pump-*"], "pump-", True),
        (["pump-*"], "pump", False),
        (["pump-*"], "my-pump-001", False),
        (["pump-*"], "Pump-001", False),
        (["pump-???"], "pump-001", True),
        (["pump-???"], "pump-0001", False),
        (["pump-[0-9][0-9]"], "pump-42", True),
        (["pump-[0-9][0-9]"], "pump-4x", False),
        (["pump-*", "skab-*"], "skab-valve", True),
        (["pump-*", "skab-*"], "valve-1", False),
        (["plant.a/pump+1"], "plant.a/pump+1", True),  # regex characters are literal
        (["plant.a/pump+1"], "plantXa/pumpp1", False),
        (["*"], "anything at all", True),
    ],
)
def test_sensor_patterns_are_shell_globs_matching_the_whole_id(
    tmp_path: Path, patterns: list[str], sensor_id: str, known: bool
) -> None:
    loaded = load_profile(write(tmp_path, minimal() | {"sensors": patterns}))
    assert loaded.is_known_sensor(sensor_id) is known
