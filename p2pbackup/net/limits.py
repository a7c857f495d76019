"""How much one remote may cost this peer: connection caps and rate budgets.

A peer answers whoever connects, so every resource a stranger can make it
spend needs a ceiling that does not depend on the stranger's good will:
descriptors (caps kept below the process's limit, so files and our own dials
still open), memory (one byte budget over all connections), and requests and
dials over time (token buckets). Buckets read an injected clock, so the same
rules run on virtual time and in tests.
"""

from __future__ import annotations

import logging
import resource
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import trio

log = logging.getLogger("p2pbackup.net.limits")

# Descriptors kept free of connections: the share store, its index, logs,
# the control socket and a backup's open files.
FD_HEADROOM = 64
# Without a descriptor limit, connections are still capped: each may hold a frame.
FD_UNLIMITED = 4096


def descriptor_limit() -> int:
    """The soft limit on this process's open files."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return FD_UNLIMITED if soft == resource.RLIM_INFINITY else int(soft)


def connection_caps(fd_limit: int) -> tuple[int, int]:
    """(total, unauthenticated) connection caps for a descriptor limit.

    Three quarters of what is left after the headroom go to connections, so
    outgoing dials and files keep a quarter; at most a quarter of those may be
    strangers still in their handshake."""
    total = max(8, (fd_limit - FD_HEADROOM) * 3 // 4)
    return total, max(2, total // 4)


@dataclass
class TokenBucket:
    """`burst` tokens at most, refilled at `rate` per second of the clock."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class RateLimit:
    """One token bucket per key (an identity, an address), the least recent
    forgotten past `max_keys`, so a flood of new keys cannot grow it either."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float], max_keys: int = 4096
    ) -> None:
        self.rate, self.burst, self.clock, self.max_keys = rate, burst, clock, max_keys
        self._buckets: OrderedDict[Hashable, TokenBucket] = OrderedDict()
        self._refusing: set[Hashable] = set()

    def allow(self, key: Hashable) -> bool:
        now = self.clock()
        bucket = self._buckets.pop(key, None) or TokenBucket(self.rate, self.burst, self.burst, now)
        self._buckets[key] = bucket  # now the most recent
        while len(self._buckets) > self.max_keys:
            forgotten, _ = self._buckets.popitem(last=False)
            self._refusing.discard(forgotten)
        if bucket.take(now):
            self._refusing.discard(key)
            return True
        return False

    def first_refusal(self, key: Hashable) -> bool:
        """True once per run of refusals, so a flood costs one log line, not one each."""
        if key in self._refusing:
            return False
        self._refusing.add(key)
        return True


class ByteBudget:
    """Bytes every connection together may make this peer hold: frames being
    received and replies not yet sent. Past it, connections that already hold
    something wait for it to shrink, and only those with nothing held go on,
    so a small request is still read while big ones queue."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = trio.Event()

    @property
    def over(self) -> bool:
        return self.used > self.limit

    @property
    def room(self) -> int:
        return self.limit - self.used

    def take(self, size: int) -> None:
        self.used += size

    def give(self, size: int) -> None:
        if size:
            self.used -= size
            self._freed.set()
            self._freed = trio.Event()

    async def freed(self) -> None:
        """Return the next time some bytes are given back."""
        await self._freed.wait()
