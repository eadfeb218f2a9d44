"""How a setting is named in the environment, and where the packaged profiles are."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = PACKAGE_DIR / "profiles" / "skab_pump.yaml"


def env_alias(name: str) -> AliasChoices:
    # Accept the plain env name and the field name, so Settings(field=...) works in code.
    return AliasChoices(name, name.lower())
