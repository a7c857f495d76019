"""What a relay has promised and what it may still take on, sans-IO (decision 0040).

A relay carries traffic for others at its own cost, so every promise it
makes has a ceiling that does not depend on the asker's good will: how many
peers hold a reservation, how many sessions each has, how many tokens wait
for their two ends (and for how long), how often one identity may ask, and
how many bytes a second pass for one relayed peer and for all together.
Refusals raise `RelayRefused` with a reason the asker can log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from nacl.utils import random as random_bytes

from p2pbackup.errors import P2PBackupError
from p2pbackup.net.limits import RateLimit
from p2pbackup.net.relay_wire import TOKEN_BYTES

MIB = 1024 * 1024


class RelayRefused(P2PBackupError):
    """A relay request refused; the message says why."""


@dataclass(frozen=True)
class RelayLimits:
    """A relay's ceilings; the defaults carry a few home peers on a home uplink."""

    max_peers: int = 32  # reservations held at once
    rate: float = 1 * MIB  # bytes a second for one relayed peer, both ways, all its sessions
    total_rate: float = 8 * MIB  # bytes a second for everyone together
    sessions_per_peer: int = 8  # sessions being set up or spliced, per relayed peer
    max_pending: int = 64  # tokens waiting for their two ends, over all peers
    reservation_ttl: int = 120  # seconds a reservation lasts unrenewed
    token_ttl: float = 5.0  # seconds both ends have to come with a token
    # RelayReserve and RelayConnect together, per identity.
    requests_per_second: float = 2.0
    request_burst: float = 20.0
    idle_timeout: float = 300.0  # a session carrying nothing either way this long is closed


@dataclass(frozen=True, slots=True)
class Pending:
    """A session promised to `source`, waiting for both ends to come."""

    source: bytes
    target: bytes
    expires: float


class RelayBook:
    """Reservations, session tokens and their counts; the relay's trio side asks it first."""

    def __init__(
        self,
        limits: RelayLimits,
        clock: Callable[[], float],
        make_token: Callable[[int], bytes] = random_bytes,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self._make_token = make_token
        self.reservations: dict[bytes, float] = {}  # node id -> expiry
        self.pending: dict[bytes, Pending] = {}  # token -> session waiting for its ends
        self.active: Counter[bytes] = Counter()  # relayed peer -> sessions spliced
        self._asks = RateLimit(limits.requests_per_second, limits.request_burst, clock)

    def _check_rate(self, node_id: bytes) -> None:
        if not self._asks.allow(node_id):
            raise RelayRefused(
                f"too many relay requests; at most {self.limits.requests_per_second:g} a second"
            )

    def _purge(self, now: float) -> None:
        for node_id, expiry in list(self.reservations.items()):
            if expiry <= now:
                del self.reservations[node_id]
        for token, pending in list(self.pending.items()):
            if pending.expires <= now:
                del self.pending[token]

    def reserve(self, node_id: bytes) -> int:
        """Grant or renew `node_id`'s reservation; returns its time to live in seconds."""
        self._check_rate(node_id)
        now = self.clock()
        self._purge(now)
        limits = self.limits
        if node_id not in self.reservations and len(self.reservations) >= limits.max_peers:
            raise RelayRefused(f"this relay is full: {limits.max_peers} peers hold reservations")
        self.reservations[node_id] = now + limits.reservation_ttl
        return limits.reservation_ttl

    def release(self, node_id: bytes) -> None:
        """Forget `node_id`'s reservation (its connection is gone)."""
        self.reservations.pop(node_id, None)

    def reserved(self, node_id: bytes) -> bool:
        expiry = self.reservations.get(node_id)
        return expiry is not None and expiry > self.clock()

    def sessions_of(self, target: bytes) -> int:
        """Sessions of `target` being set up or spliced."""
        waiting = sum(1 for p in self.pending.values() if p.target == target)
        return waiting + self.active[target]

    def connect(self, source: bytes, target: bytes) -> bytes:
        """A token for a session from `source` to `target`, or `RelayRefused`."""
        self._check_rate(source)
        now = self.clock()
        self._purge(now)
        limits = self.limits
        if target == source:
            raise RelayRefused("a peer cannot open a relayed session to itself")
        if target not in self.reservations:
            raise RelayRefused(f"{target.hex()[:12]} holds no reservation at this relay")
        if self.sessions_of(target) >= limits.sessions_per_peer:
            raise RelayRefused(
                f"{target.hex()[:12]} already has {limits.sessions_per_peer} relayed sessions"
            )
        if len(self.pending) >= limits.max_pending:
            raise RelayRefused(f"{limits.max_pending} relayed sessions are being set up already")
        token = self._make_token(TOKEN_BYTES)
        self.pending[token] = Pending(source, target, now + limits.token_ttl)
        return token

    def claim(self, token: bytes) -> Pending | None:
        """The session a token opens, if it is known and unexpired."""
        pending = self.pending.get(token)
        if pending is None or pending.expires <= self.clock():
            return None
        return pending

    def cancel(self, token: bytes) -> None:
        self.pending.pop(token, None)

    def started(self, token: bytes) -> None:
        """Both ends came: the token is spent and the session counts as spliced."""
        pending = self.pending.pop(token, None)
        if pending is not None:
            self.active[pending.target] += 1

    def ended(self, target: bytes) -> None:
        self.active[target] -= 1
        if self.active[target] <= 0:
            del self.active[target]


class ByteRate:
    """A byte budget refilled at `rate` a second, up to `burst`: `delay` says how long a
    sender must wait before sending `size` bytes so the rate holds on average."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 4, 64 * 1024)
        self._tokens = self.burst
        self._stamp: float | None = None

    def delay(self, size: int, now: float) -> float:
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= size
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
