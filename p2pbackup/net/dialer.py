"""Opening a stream to a peer over one of its routes, in order, each attempt bounded.

A contact may name several routes (its LAN address, a mapped port, relays);
the first that opens wins. Each attempt gets its own short timeout so a
route that swallows packets (a NAT's public side) costs seconds, not the
caller's whole budget.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from p2pbackup.errors import PeerUnreachable
from p2pbackup.net.contact import Contact, Route, format_address

log = logging.getLogger("p2pbackup.net.dialer")


class RelayDialer(Protocol):
    """Opens a stream to `target` through the relay a route names; the two ends then
    run their own handshake over it, so the relay carries only opaque bytes."""

    async def open(self, route: Route, target: bytes) -> trio.abc.Stream: ...


def dial_order(contact: Contact) -> list[Route]:
    """The routes to try for `contact`, best first.

    A contact that names routes names every way to dial it (its main address
    among them only if that one can be dialled); one that names none is
    dialled at its main address.
    """
    if contact.routes:
        return list(contact.routes)
    return [Route(contact.host, contact.port)]


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
