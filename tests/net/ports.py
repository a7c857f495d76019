"""A port for a test to listen on later, outside the kernel's ephemeral range.

A port bound to 0 and let go comes from the ephemeral range, which every outgoing
connection on the machine draws its local port from: a peer of another test worker
connecting out took one such port before the test's peer listened on it ("address
already in use"). Ports below the range are handed out to no one."""

from __future__ import annotations

import random
import socket
from pathlib import Path

RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000


def unused_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now, below the ephemeral range (else any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        first_ephemeral = int(RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = LOWEST
    candidates = list(range(LOWEST, first_ephemeral))
    random.shuffle(candidates)
    for port in [*candidates[:200], 0]:
        with socket.socket(family) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no port free on {host}")
