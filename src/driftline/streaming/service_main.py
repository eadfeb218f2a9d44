"""Process entry point shared by the services: settings, logging, metrics and health, signals,
run."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable

from driftline.core.health import serve
from driftline.core.logs import configure_logging
from driftline.core.settings import Settings
from driftline.core.settings_errors import settings_or_exit
from driftline.streaming.runtime import install_signal_handlers

ServiceRun = Callable[[Settings, asyncio.Event], Awaitable[None]]


def tune_gc(batch_max_records: int = 1_000) -> None:
    """Garbage collection for batches of thousands of readings, once start-up is done.

    What start-up made (modules: pandas, pandera, pydantic, ...) lives as long as the process:
    freezing it spares it from every full collection. And the batches in flight are tens of
    thousands of young objects (aiokafka's ``ConsumerRecord`` and a ``Message`` per record, two
    or three batches' worth: the one polled and those being handled): a young collection
    walks every one of them, and yet finds almost nothing to free (a batch is freed by
    reference counting once handled). CPython counts a young collection's trigger as objects
    allocated minus objects freed, so a threshold above what the live batches hold (10 per
    record of a batch) leaves collections to garbage that really accumulates (cycles), at most
    that many objects of it. Collecting after every 700 allocations (the default) cost the
    validator a third of its CPU per reading at 10,000 a batch (bench/validation_cost.py);
    every 10,000, still ~1.2 us a reading in ingest and ~2 us in the validator
    (bench/stream_throughput.py, docs/benchmarks.md).
    """
    gc.freeze()
    gc.set_threshold(max(10_000, 10 * batch_max_records), 10, 10)


def refuse_arguments(name: str) -> None:
    """A service run as a script (its image's entry point) takes no arguments: ``--help`` says
    what it does and where its settings come from; anything else is an error, not ignored."""
    parser = argparse.ArgumentParser(
        prog=f"services/{name}/service.py",
        description=getattr(sys.modules.get("__main__"), "__doc__", None),
        epilog="Settings come from environment variables (DRIFTLINE_*, KAFKA_BOOTSTRAP_SERVERS, "
        "DATABASE_URL, ...): `driftline settings` lists each with its current value. "
        f"`driftline {name}` runs the same service.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args()


def service_main(name: str, run: ServiceRun, settings: Settings | None = None) -> None:
    """Run service ``name``; without ``settings`` (run as a script) they come from the
    environment and the command line is checked first."""
    if settings is None:
        refuse_arguments(name)
    settings = settings or settings_or_exit()
    configure_logging(settings.log_level, name)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        serve(settings.metrics_host, settings.metrics_port)
    except OSError as exc:  # e.g. the port is taken: a setting to change, not a crash
        raise SystemExit(
            f"{name}: cannot serve /metrics on {settings.metrics_host}:{settings.metrics_port}: "
            f"{exc.strerror or exc}. DRIFTLINE_METRICS_PORT sets another port."
        ) from None

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await run(settings, stop)

    tune_gc(settings.batch_max_records)
    try:
        asyncio.run(main())
    except Exception:
        logging.getLogger(name).exception("%s failed", name)
        raise SystemExit(1) from None
