"""Services that start together all create the raw store's tables: none may fail for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import sqlalchemy as sa

from driftline.labels.store import LabelStore, create_label_tables
from driftline.labels.store import metadata as label_metadata
from driftline.store.migrations import current, head, migrate
from driftline.store.raw_store import RawStore
from driftline.store.tables import metadata


def test_services_starting_together_create_the_tables_once(database_url: str) -> None:
    stores = [RawStore.from_url(database_url) for _ in range(6)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(lambda store: store.create_tables(), stores))
        tables = set(sa.inspect(stores[0].engine).get_table_names())
        assert set(metadata.tables) | set(label_metadata.tables) <= tables
    finally:
        for store in stores:
            store.engine.dispose()


def _shape(engine: sa.Engine, table: str) -> tuple[dict[str, tuple[str, bool]], set[str], list]:
    inspector = sa.inspect(engine)
    columns = {
        c["name"]: (type(c["type"]).__name__, bool(c["nullable"]))
        for c in inspector.get_columns(table)
    }
    indexes = {i["name"] for i in inspector.get_indexes(table)}
    return columns, indexes, inspector.get_pk_constraint(table)["constrained_columns"]


@contextlib.contextmanager
def _beside(database_url: str) -> Iterator[sa.Engine]:
    """A second empty database of the same kind as ``database_url``'s."""
    if database_url.startswith("sqlite"):
        engine = sa.create_engine(database_url.replace("raw.db", "beside.db"))
        yield engine
        engine.dispose()
        return
    server, name = database_url.rsplit("/", 1)
    admin = sa.create_engine(database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}_beside"))
    engine = sa.create_engine(f"{server}/{name}_beside")
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}_beside"))
        admin.dispose()


def test_the_migrations_make_the_label_tables_as_the_labeler_made_them(database_url: str) -> None:
    """Revision 0003 gives the labels tables the shape create_all gave them: same columns,
    types, nullability, keys and indexes."""
    migrated = sa.create_engine(database_url)
    try:
        migrate(migrated)
        assert current(migrated) == head()
        with _beside(database_url) as made:
            label_metadata.create_all(made)
            for table in label_metadata.tables:
                assert _shape(migrated, table) == _shape(made, table), table
    finally:
        migrated.dispose()


def test_a_database_whose_label_tables_create_all_made_is_upgraded(database_url: str) -> None:
    """A labeler before revision 0003 made the tables with create_all beside a raw store at
    0002: the upgrade keeps them and their rows, and stamps the database at the head."""
    engine = sa.create_engine(database_url)
    try:
        migrate(engine, "0002")
        label_metadata.create_all(engine)
        at = datetime(2026, 11, 30, 8, 0)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(label_metadata.tables["label_tasks"]),
                {
                    "task_key": "k" * 32,
                    "kind": "drift_episode",
                    "sensor_id": "pump-001",
                    "start_ts": at,
                    "end_ts": at + timedelta(minutes=5),
                    "reason": "drift",
                    "model_version": None,
                    "created_at": at,
                    "ls_task_id": 7,
                },
            )
        assert current(engine) == "0002"
        create_label_tables(engine)  # what the labeler and `driftline labels sync` call
        assert current(engine) == head()
        with engine.connect() as conn:
            tasks = conn.execute(sa.select(label_metadata.tables["label_tasks"])).all()
        assert [(t.task_key, t.ls_task_id) for t in tasks] == [("k" * 32, 7)]
        store = LabelStore(engine)
        assert store.task_keys() == {"k" * 32}
        assert store.unpublished() == []
    finally:
        engine.dispose()
