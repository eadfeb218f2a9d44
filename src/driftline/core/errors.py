"""Every error Driftline raises on purpose derives from DriftlineError."""

from __future__ import annotations


class DriftlineError(Exception):
    """Base class of Driftline's own errors."""


class ConfigurationError(DriftlineError):
    """A setting or profile is missing or inconsistent."""


class BrokerError(DriftlineError):
    """The embedded broker could not be started or reached."""


class ProfileError(ConfigurationError):
    """A schema profile file is malformed."""


class StoreError(DriftlineError):
    """The raw store refused or would have changed a batch (the transaction is rolled back)."""


class StoreUnavailable(DriftlineError):
    """The raw store cannot be used now (e.g. its SQLite file was removed or replaced)."""
