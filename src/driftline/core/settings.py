"""One settings object per process, read once from the environment and passed down.

Standard names (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``) are read as they are; every other
setting is ``DRIFTLINE_<NAME>``. Each field's description is its documentation
(``driftline settings`` prints them all).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, SecretStr
from pydantic_settings import SettingsConfigDict

from driftline.core.settings_env import DEFAULT_PROFILE
from driftline.core.settings_models import ModelSettings
from driftline.core.settings_operations import OperationSettings
from driftline.core.settings_streams import StreamSettings

__all__ = ["DEFAULT_PROFILE", "Settings", "env_name", "load_settings"]


class Settings(OperationSettings, ModelSettings, StreamSettings):
    model_config = SettingsConfigDict(
        env_prefix="DRIFTLINE_", frozen=True, extra="ignore", populate_by_name=True
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'driftline.db').resolve()}"

    @property
    def resolved_readonly_url(self) -> str:
        if self.database_readonly_url is not None:
            return self.database_readonly_url.get_secret_value()
        return self.resolved_database_url

    @property
    def resolved_mlflow_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"

    @property
    def resolved_bentoml_home(self) -> Path:
        return (self.bentoml_home or self.data_dir / "bentoml").resolve()

    @property
    def resolved_data_repo(self) -> Path:
        return (self.data_repo_path or self.data_dir / "datarepo").resolve()

    @property
    def resolved_dvc_remote(self) -> str:
        return self.dvc_remote_url or str((self.data_dir / "dvc-remote").resolve())

    @property
    def resolved_reference_path(self) -> Path:
        return self.reference_path or self.data_dir / "reference.parquet"

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables a child process reads them from."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, bool):
                value = "true" if value else "false"
            env[env_name(name)] = str(value)
        # Stores with defaults derived from the data directory: a child must use the same
        # ones as its parent, not whatever its inherited environment says.
        env["MLFLOW_TRACKING_URI"] = self.resolved_mlflow_uri
        env["BENTOML_HOME"] = str(self.resolved_bentoml_home)
        return env

    def group_id(self, service: str) -> str:
        return f"{self.consumer_group_prefix}-{service}"


def env_name(field: str) -> str:
    """The environment variable a setting is read from."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"DRIFTLINE_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Build the process's settings from the environment, with explicit overrides on top."""
    # Keyword values of any type: pydantic validates each against its field.
    return Settings(**overrides)  # type: ignore[arg-type]
