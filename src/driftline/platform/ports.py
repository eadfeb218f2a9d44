"""Ports for the processes ``driftline up`` starts.

A child binds its port a second or two after the parent chose it. So each port is checked free
when chosen and never handed out twice, and a port taken (for example the local end of some
client's connection) is replaced by a free one, with a warning, instead of a crash loop.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class PortPlan:
    claimed: set[int] = field(default_factory=set)

    def claim(self, wanted: int, what: str) -> int:
        """``wanted`` when it is free and not yet handed out, else another free port."""
        port = wanted
        if port in self.claimed or not bindable(port):
            while port in self.claimed or port == wanted:
                port = free_port()
            log.warning("port %d is taken: %s uses port %d", wanted, what, port)
        self.claimed.add(port)
        return port
