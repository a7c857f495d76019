"""Opening a stream to a peer over the first of its routes to open, raced in order.

A contact may name several routes (its LAN address, a mapped port, relays);
the first that opens wins. Each starts a moment after the one before
(`stagger`), not after it failed, so a route that swallows packets (a LAN
address dialled from outside, a NAT's public side) costs a quarter of a
second, not an attempt timeout. The order (`dial_order`) is same LAN first:
a route on the network of one of our own interfaces answers fastest and
costs no relay; then direct routes elsewhere; relays last, as they carry
every byte twice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from functools import partial
from typing import Protocol, TypeVar

import trio

from p2pbackup.errors import HandshakeError, PeerUnreachable, WireError
from p2pbackup.net.contact import Contact, Route, format_address
from p2pbackup.net.interfaces import Interface, on_link
from p2pbackup.net.stagger import RELAY_STAGGER, STAGGER, first_to_succeed

log = logging.getLogger("p2pbackup.net.dialer")

SAME_LAN, DIRECT, RELAYED = 0, 1, 2
# What a dial attempt that could not open raises; the next route is tried.
DIAL_FAILURES = (OSError, PeerUnreachable, HandshakeError, WireError)
T = TypeVar("T")


class RelayDialer(Protocol):
    """Opens a stream to `target` through the relay a route names; the two ends then
    run their own handshake over it, so the relay carries only opaque bytes."""

    async def open(self, route: Route, target: bytes) -> trio.abc.Stream: ...


def route_rank(route: Route, interfaces: Iterable[Interface] = ()) -> int:
    """SAME_LAN, DIRECT or RELAYED: where a route stands in the dial order."""
    if route.relay is not None:
        return RELAYED
    return SAME_LAN if on_link(route.host, interfaces) else DIRECT


def dial_order(
    contact: Contact, interfaces: Iterable[Interface] = (), own_id: bytes | None = None
) -> list[Route]:
    """The routes to try for `contact`, best first: routes on one of our own networks
    (`interfaces`), then other direct routes, then relays (never through `own_id`, the
    dialler itself), each group in the contact's own order.

    A contact that names routes names every way to dial it (its main address
    among them only if that one can be dialled); one that names none is
    dialled at its main address.
    """
    if not contact.routes:
        return [Route(contact.host, contact.port)]
    ours = tuple(interfaces)
    routes = [route for route in contact.routes if own_id is None or route.relay != own_id]
    return sorted(routes, key=lambda route: route_rank(route, ours))


def start_delays(routes: Sequence[Route]) -> list[float]:
    """How long after the route before it each of `routes` (in dial order) is tried
    (`stagger.first_to_succeed`): relays wait longer, as they carry every byte twice."""
    return [
        0.0 if index == 0 else RELAY_STAGGER if route.relay is not None else STAGGER
        for index, route in enumerate(routes)
    ]


async def dial_first(
    address: tuple[str, int], routes: Sequence[Route], open_one: Callable[[Route], Awaitable[T]]
) -> T:
    """What `open_one` gives for the first of `routes` to open, each begun a little after
    the one before (`start_delays`); the last failure when none opens."""
    if not routes:
        raise PeerUnreachable(f"{format_address(address)} has no route")

    async def attempt(route: Route) -> T:
        try:
            return await open_one(route)
        except DIAL_FAILURES as exc:
            log.debug("route %s to %s failed: %s", describe(route), address, exc)
            raise

    tries = [partial(attempt, route) for route in routes]
    return await first_to_succeed(tries, start_delays(routes), DIAL_FAILURES)


async def open_route(
    route: Route, target: bytes | None, relays: RelayDialer | None
) -> trio.abc.Stream:
    """One attempt; raises `OSError` or `PeerUnreachable` when it cannot open."""
    if route.relay is None:
        return await trio.open_tcp_stream(route.host, route.port)
    if relays is None or target is None:
        raise PeerUnreachable(f"{route} needs a relay, and this peer cannot use one")
    return await relays.open(route, target)


def describe(route: Route) -> str:
    return str(route) if route.relay is not None else format_address(route.address)


class DialLocks:
    """One dial at a time per key (an address and the routes tried to it), so requests
    that find no connection open one between them; a key is forgotten once nobody
    holds or waits for its lock."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, trio.Lock] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            idle = not lock.locked() and not lock.statistics().tasks_waiting
            if idle and self._locks.get(key) is lock:
                del self._locks[key]


class DirectTries:
    """Whether to dial a peer directly though a relayed connection to it is open.

    A connection a peer opened to us through its relay carries our requests too,
    at the relay's pace; a direct dial is worth a try unless it failed lately."""

    def __init__(self, retry_after: float = 600.0, remembered: int = 4096) -> None:
        self.retry_after = retry_after
        self.remembered = remembered
        self._failed: dict[bytes, float] = {}

    def worth_trying(self, contact: Contact, now: float) -> bool:
        if contact.routes and all(route.relay is not None for route in contact.routes):
            return False
        last = self._failed.get(contact.node_id)
        return last is None or now - last >= self.retry_after

    def failed(self, node_id: bytes, now: float) -> None:
        self._failed.pop(node_id, None)
        self._failed[node_id] = now
        while len(self._failed) > self.remembered:
            del self._failed[next(iter(self._failed))]
