"""ingest: lands every raw reading in the raw store, then commits its offset.

Rows are keyed by the message's identity and written with duplicates ignored (a batch at a
time, as the database loads it natively: ``raw_bulk``), and offsets are committed only after
the rows' transaction, so a crash at any point loses nothing and a redelivery adds nothing.
With ``ingest_batches_in_flight`` above 1 the next batch is fetched and decoded while the
database loads the previous one; offsets are still committed in order, each batch's after
its own rows and every earlier batch's.
"""

from __future__ import annotations

import asyncio

from driftline.core import metrics
from driftline.core.settings import Settings
from driftline.store.raw_store import RawStore
from driftline.streaming.messages import Message
from driftline.streaming.readiness import retry_blocking
from driftline.streaming.runtime import BatchHandler, run_consumer_service
from driftline.streaming.service_main import service_main

NAME = "ingest"


class IngestHandler(BatchHandler):
    def __init__(self, store: RawStore, batches_in_flight: int = 1) -> None:
        self.store = store
        # Batches are independent rows: the next is decoded while the database loads the last.
        self.batches_in_flight = batches_in_flight

    async def handle(self, batch: list[Message]) -> None:
        # SQL drivers block: keep the event loop (and the group heartbeat) free meanwhile.
        n = await asyncio.to_thread(self.store.add_messages, batch)
        metrics.readings_stored.inc(n)


async def run(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    store = RawStore.from_url(
        settings.resolved_database_url, bulk_load=settings.raw_store_bulk_load
    )
    with store:
        if await retry_blocking(f"{NAME}: creating tables", store.create_tables, stop) is None:
            return
        # SQLite has one writer at a time: a second batch would only wait for the lock.
        sqlite = store.engine.dialect.name == "sqlite"
        in_flight = 1 if sqlite else settings.ingest_batches_in_flight
        await run_consumer_service(
            NAME,
            settings,
            lambda topics: [topics.raw_readings],
            lambda ctx: IngestHandler(store, in_flight),
            stop=stop,
            dependencies={"database": store.ping},
        )


if __name__ == "__main__":
    service_main(NAME, run)
