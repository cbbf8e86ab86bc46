"""Ports for servers we start: never from the range the kernel hands out by itself.

A port taken with bind(0) and released can be handed to the next bind(0) of any process before
our server binds it; BentoML's arbiter once took a test server's port that way (CI: "Could not
bind", then a ZMQ greeting read as an HTTP status line).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from conveyor.ports import ephemeral_range, free_port

pytestmark = pytest.mark.unit


def test_a_free_port_is_outside_the_ephemeral_range_and_bindable() -> None:
    low, high = ephemeral_range()
    for _ in range(20):
        port = free_port()
        assert not low <= port <= high, (port, low, high)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_range_reaching_low_ports_sends_the_choice_above_it() -> None:
    port = free_port(ephemeral=(10500, 60999), rng=random.Random(1))
    assert 61000 <= port <= 65535


def test_a_port_in_use_is_skipped() -> None:
    taken = free_port(rng=random.Random(7))
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        assert free_port(rng=random.Random(7)) != taken


def test_the_range_is_read_from_the_kernel_setting(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n")
    assert ephemeral_range(setting) == (40000, 50000)
    setting.write_text("garbage")
    assert ephemeral_range(setting) == (32768, 60999)
    assert ephemeral_range(tmp_path / "absent") == (32768, 60999)
