"""Services that start together all create the raw store's tables: none may fail for it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from driftline.raw_store import RawStore, metadata


def test_services_starting_together_create_the_tables_once(database_url: str) -> None:
    stores = [RawStore.from_url(database_url) for _ in range(6)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            list(pool.map(lambda store: store.create_tables(), stores))
        tables = set(sa.inspect(stores[0].engine).get_table_names())
        assert set(metadata.tables) <= tables
    finally:
        for store in stores:
            store.engine.dispose()
