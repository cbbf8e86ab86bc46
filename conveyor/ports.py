"""A free TCP port for a server this process is about to start, that the kernel will not hand
to anyone else in the meantime.

Binding port 0 gets a port from the kernel's ephemeral range, and closing the socket frees it.
Until the caller's server binds that number, any process that binds port 0 or opens a
connection can be given the same one. BentoML's process manager reserves its ZMQ ports exactly
so: a test server once lost its HTTP port to its own arbiter ("Could not bind", then a ZMQ
greeting where HTTP was expected). The kernel never hands out a port below the ephemeral range,
so only a process that names such a port can take it; this module picks one of those.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

__all__ = ["ephemeral_range", "free_port"]

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LINUX_DEFAULT = (32768, 60999)
_LOWEST = 10000  # below: the ports services are commonly configured on


def ephemeral_range(path: Path = _RANGE_FILE) -> tuple[int, int]:
    """The ports the kernel hands out on its own (Linux's setting, else its default)."""
    try:
        low, high = (int(part) for part in path.read_text().split())
    except (OSError, ValueError):
        return _LINUX_DEFAULT
    return low, high


def free_port(
    host: str = "127.0.0.1",
    *,
    ephemeral: tuple[int, int] | None = None,
    rng: random.Random | None = None,
) -> int:
    """A port on ``host`` that nothing listens on, chosen outside the ephemeral range."""
    low, high = ephemeral or ephemeral_range()
    choices = range(_LOWEST, low) if low - _LOWEST >= 1000 else range(high + 1, 65536)
    draw = rng or random.SystemRandom()
    for _ in range(100):
        port = draw.choice(choices)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))  # no SO_REUSEADDR: a port in TIME_WAIT is skipped too
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded range: fall back to the kernel's choice
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
