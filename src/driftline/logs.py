"""Logging set-up for commands and services: one line per event, with the service name."""

from __future__ import annotations

import logging


def configure_logging(level: str = "INFO", service: str = "driftline") -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
