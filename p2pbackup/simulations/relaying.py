"""Peers behind a NAT in the simulator: reached only through relays they reserve with.

The same relay server and client as on TCP (decision 0040) run on the
simulated transport: every reachable peer relays, a peer behind a NAT keeps
reservations with two peers others can dial, and the network delivers a
request to it only through a relay route whose relay is up and holds its
reservation. Its contact names those routes, so others check it through them
and can place shares on it (decision 0042).
"""

from __future__ import annotations

from collections.abc import Iterator

import trio

from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.relay_book import RelayLimits
from p2pbackup.net.relay_client import RelayClient
from p2pbackup.net.relay_server import RelayServer
from p2pbackup.net.relay_wire import RELAY_CLIENT_REQUESTS, RELAY_SERVER_REQUESTS
from p2pbackup.net.sim import SimNetwork, SimTransport
from p2pbackup.peer.peer import Peer

RELAYS_WANTED = 2
# Virtual seconds between a relayed peer's looks at its reservations: long runs would
# otherwise spend most of their messages renewing them.
CHECK_INTERVAL = 300.0
RESERVATION_SECONDS = 900  # three looks


def equip(network: SimNetwork, transport: SimTransport, peer: Peer) -> None:
    """Make `peer` relay for others if it can be dialled, and reserve if it cannot."""
    if transport.reachable:
        limits = RelayLimits(reservation_ttl=RESERVATION_SECONDS)
        server = RelayServer(transport, limits, clock=trio.current_time)
        network.carry(transport.listen, server.book.reserved)
        for kind in RELAY_SERVER_REQUESTS:
            peer.add_handler(kind, server.handle)
        return

    def candidates() -> Iterator[Contact]:
        return (c for c in peer.dht.table if not any(r.relay for r in c.routes))

    def advertise(routes: tuple[Route, ...]) -> None:
        transport.set_advertised(None, routes)

    client = RelayClient(
        transport,
        candidates,
        advertise,
        want=RELAYS_WANTED,
        check_interval=CHECK_INTERVAL,
        retry=CHECK_INTERVAL / 10,
        clock=trio.current_time,
    )
    for kind in RELAY_CLIENT_REQUESTS:
        peer.add_handler(kind, client.handle)
    peer.add_task(client.run)
