"""Schema migrations of the raw store (Alembic), run by every service that writes it at start.

``migrate`` upgrades the database to the newest revision. Services starting together take
turns: a named lock on MariaDB/MySQL, a lock file beside the SQLite file. A store created
before migrations existed (by ``create_all``) needs nothing first: revision 0001 creates only
the tables that are missing.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

HERE = Path(__file__).resolve().parent
LOCK_SECONDS = 300


def config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(config()).get_current_head()
    if revision is None:
        raise RuntimeError(f"no Alembic head revision under {HERE}")
    return revision


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade ``engine``'s database to ``revision`` (the newest by default)."""
    target = head() if revision == "head" else revision
    with _turn(engine), engine.connect() as conn:
        if MigrationContext.configure(conn).get_current_revision() == target:
            return
        command.upgrade(config(conn), revision)
        conn.commit()


@contextlib.contextmanager
def _turn(engine: Engine) -> Iterator[None]:
    """One migrating process at a time."""
    if engine.dialect.name in ("mysql", "mariadb"):
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT GET_LOCK('driftline_migrate', :s)"), {"s": LOCK_SECONDS}
            )
            if got.scalar_one() != 1:
                raise TimeoutError("another process has been migrating the raw store too long")
            try:
                yield
            finally:
                conn.execute(text("SELECT RELEASE_LOCK('driftline_migrate')"))
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
