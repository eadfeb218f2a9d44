"""Logging set-up for commands and services: one line per event, with the service name."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@/\s]+@")


def redact(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` URL in it masked: for
    values that are not secrets as a whole but may hold one (e.g. an MLflow store URL)."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text)


def configure_logging(level: str = "INFO", service: str = "driftline") -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("aiokafka", "kafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatedLines(("aiokafka", "kafka")))
        handler.addFilter(RedactUrls())


def configure_package_logging(level: str = "INFO", service: str = "driftline") -> None:
    """Log the ``driftline`` package's lines in a process whose logging belongs to someone else
    (a BentoML worker): a handler of its own, leaving the host's root configuration alone."""
    logger = logging.getLogger("driftline")
    if any(getattr(h, "driftline", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.driftline = True  # type: ignore[attr-defined]  # our mark, checked above
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s")
    )
    handler.addFilter(RedactUrls())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


class RedactUrls(logging.Filter):
    """Masks URL passwords in every line (an error may quote the URL it failed on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message and "@" in message:
            record.msg, record.args = redact(message), None
        return True


class RepeatedLines(logging.Filter):
    """Passes each distinct line of the ``loggers`` once per ``window`` seconds.

    While the broker is away, aiokafka logs every reconnect attempt at ERROR, a dozen lines a
    second; the service's own lines say that it waits and retries.
    """

    def __init__(self, loggers: tuple[str, ...], window: float = 30.0) -> None:
        super().__init__()
        self.loggers = loggers
        self.window = window
        self._last: dict[tuple[str, int, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.loggers):
            return True
        key = (record.name, record.levelno, record.getMessage())
        now = time.monotonic()
        if now - self._last.get(key, -self.window) < self.window:
            return False
        if len(self._last) > 10_000:  # distinct lines carry offsets or ids: keep it bounded
            self._last.clear()
        self._last[key] = now
        return True


def log_to_file(path: Path, level: str = "INFO") -> None:
    """Every log line and Python warning of this process to ``path``; on the terminal only
    Driftline's own warnings and errors (third-party INFO lines and warnings stay in the file).
    For ``driftline up``, whose terminal belongs to the live view."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    to_file.addFilter(RedactUrls())
    root.addHandler(to_file)
    root.setLevel(level.upper())
    terminal = logging.StreamHandler()
    terminal.setLevel(logging.WARNING)
    terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    terminal.addFilter(lambda record: record.name.startswith("driftline"))
    terminal.addFilter(RedactUrls())
    root.addHandler(terminal)
    logging.captureWarnings(True)
