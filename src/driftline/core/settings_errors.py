"""A bad setting, said in one line: the environment variable and what is wrong with it.

``Settings`` checks types and ranges; ``setting_problems`` adds what only shows when a value is
used (a database URL SQLAlchemy cannot parse, a SASL protocol without a mechanism), so that a
command refuses it at start instead of failing deep inside with a traceback. Values are never
echoed for secrets or URLs (a URL may hold a password).
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from pydantic import AliasChoices, SecretStr, ValidationError

from driftline.core.settings import Settings, env_name, load_settings

EXIT_BAD_SETTING = 2


def _field_of(location: tuple[Any, ...]) -> str | None:
    """The Settings field a pydantic error location names (a field or one of its aliases)."""
    if not location:
        return None
    key = str(location[0])
    for name, field in Settings.model_fields.items():
        if key in (name, env_name(name), env_name(name).lower()):
            return name
        alias = field.validation_alias
        if isinstance(alias, AliasChoices) and key.lower() in {
            str(c).lower() for c in alias.choices
        }:
            return name
    return None


def _is_secret(field: str | None) -> bool:
    if field is None:
        return True
    annotation = str(Settings.model_fields[field].annotation)
    return "SecretStr" in annotation or field.endswith(("_url", "_uri"))


def describe_validation_error(exc: ValidationError) -> list[str]:
    """One line per bad setting: ``NAME: what is wrong (got 'value')``."""
    lines = []
    for error in exc.errors():
        field = _field_of(tuple(error.get("loc", ())))
        variable = env_name(field) if field else ".".join(map(str, error.get("loc", ()))) or "?"
        message = str(error.get("msg", "invalid"))
        value = error.get("input")
        if not _is_secret(field) and isinstance(value, str | int | float):
            message += f" (got {str(value)[:80]!r})"
        lines.append(f"{variable}: {message}")
    return lines


def _database_problem(variable: str, secret: SecretStr | None) -> str | None:
    if secret is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(secret.get_secret_value()).get_dialect()
    except (ArgumentError, ValueError):  # unparsable, or a port that is not a number
        return (
            f"{variable}: not a database URL (expected e.g. "
            "mysql+pymysql://user:password@host:3306/driftline or sqlite:////path/driftline.db)"
        )
    except NoSuchModuleError as exc:
        return f"{variable}: unknown database dialect ({exc}); use mysql+pymysql or sqlite"
    return None


def _bootstrap_problem(servers: str | None) -> str | None:
    if not servers:
        return None
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return (
                f"KAFKA_BOOTSTRAP_SERVERS: {server.strip()!r} is not host:port "
                "(a comma-separated list of them)"
            )
    return None


def setting_problems(settings: Settings) -> list[str]:
    """What is wrong with settings Settings itself accepted, one line each."""
    problems = [
        _database_problem("DATABASE_URL", settings.database_url),
        _database_problem(env_name("database_readonly_url"), settings.database_readonly_url),
        _bootstrap_problem(settings.kafka_bootstrap_servers),
    ]
    if settings.kafka_security_protocol.startswith("SASL_"):
        for field in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"):
            if getattr(settings, field) is None:
                problems.append(
                    f"{env_name(field)}: required with "
                    f"KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}"
                )
    return [p for p in problems if p]


def settings_or_exit(**overrides: object) -> Settings:
    """The process's settings, or exit 2 with one line per bad setting on stderr."""
    try:
        settings = load_settings(**overrides)
    except ValidationError as exc:
        _exit(describe_validation_error(exc))
    problems = setting_problems(settings)
    if problems:
        _exit(problems)
    return settings


def _exit(lines: list[str]) -> NoReturn:
    for line in lines:
        print(f"driftline: bad setting {line}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_SETTING)
