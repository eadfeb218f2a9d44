"""Process entry point shared by the services: settings, logging, metrics, signals, run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from driftline.logs import configure_logging
from driftline.metrics import serve_metrics
from driftline.runtime import install_signal_handlers
from driftline.settings import Settings, load_settings

ServiceRun = Callable[[Settings, asyncio.Event], Awaitable[None]]


def service_main(name: str, run: ServiceRun, settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    configure_logging(settings.log_level, name)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    serve_metrics(settings.metrics_port)

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        await run(settings, stop)

    try:
        asyncio.run(main())
    except Exception:
        logging.getLogger(name).exception("%s failed", name)
        raise SystemExit(1) from None
