"""How a peer wires relaying: what it serves, where it looks for relays, what it tells."""

from __future__ import annotations

import random

from p2pbackup.crypto.identity import Identity
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.relay_wire import RelayConnect, RelayIncoming, RelayReserve
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.peer.relaying import RELAYS_WANTED, Relaying, RelayOptions


def _peer() -> tuple[Peer, TcpTransport]:
    transport = TcpTransport(Identity.generate(), ("127.0.0.1", 0))
    return Peer(transport.identity, transport, PeerConfig(), random.Random(1)), transport


async def test_relays_are_sought_first_where_told_then_among_peers_others_can_dial() -> None:
    peer, transport = _peer()
    relaying = Relaying(peer, transport, RelayOptions(through=(("198.51.100.7", 7000),)))
    direct = Contact(Identity.generate().node_id, "198.51.100.8", 7000)
    lan = Contact(Identity.generate().node_id, "198.51.100.9", 7000, (Route("10.0.0.9", 7000),))
    relayed = Contact(
        Identity.generate().node_id,
        "198.51.100.10",
        7000,
        (Route("198.51.100.7", 7000, bytes(20)),),
    )
    for contact in (direct, lan, relayed):
        peer.dht.table.add(contact, 0.0)
    found = list(relaying._candidates())
    assert found[0] == ("198.51.100.7", 7000)
    # A peer reached only through relays relays nothing; nor does one whose only routes
    # are on its LAN (nothing confirmed it can be dialled from outside).
    assert set(found[1:]) == {direct}


async def test_a_peer_serves_as_a_relay_unless_told_not_to() -> None:
    peer, transport = _peer()
    Relaying(peer, transport, RelayOptions())
    assert {RelayReserve, RelayConnect, RelayIncoming} <= set(peer._handlers)
    quiet, quiet_transport = _peer()
    Relaying(quiet, quiet_transport, RelayOptions(serve=False))
    assert RelayReserve not in quiet._handlers and RelayIncoming in quiet._handlers


async def test_relay_routes_go_to_the_handshake_when_relay_only_and_to_whoever_listens() -> None:
    peer, transport = _peer()
    events: list[tuple[str, object]] = []
    relaying = Relaying(
        peer, transport, RelayOptions(only=True), lambda name, **f: events.append((name, f))
    )
    heard: list[tuple[Route, ...]] = []
    relaying.on_routes = heard.append
    assert relaying.client.want == RELAYS_WANTED
    route = Route("198.51.100.7", 7000, bytes(20))
    relaying._advertise((route,))
    assert transport.routes == (route,)
    assert heard == [(route,)]
    assert events == [("relayed", {"routes": [str(route)]})]
