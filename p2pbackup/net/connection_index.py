"""Which open connection carries the requests to a peer, and which to an address.

A peer may have several connections open with another: one each dialled at once, a
dial-back probe, one through a relay and one direct. Requests to a peer go over one
of them, the direct one first: a peer behind a NAT keeps one open to each relay it
holds a reservation at, and the relay reaches it over nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable

from p2pbackup.net.connection import Connection, usable
from p2pbackup.net.transport import Address


class ConnectionIndex:
    def __init__(self) -> None:
        self._by_node: dict[bytes, Connection] = {}
        self._by_address: dict[Address, Connection] = {}

    def to_node(self, node_id: bytes) -> Connection | None:
        return self._by_node.get(node_id)

    def at_address(self, address: Address) -> Connection | None:
        return self._by_address.get(address)

    def connected_to(self, node_id: bytes) -> bool:
        """Whether a connection with the peer is open (a request to it needs no dial)."""
        return usable(self._by_node.get(node_id), node_id)

    def every(self) -> list[Connection]:
        """Each connection indexed, once."""
        every = [*self._by_node.values(), *self._by_address.values()]
        return list({id(c): c for c in every}.values())

    def clear(self) -> None:
        self._by_node.clear()
        self._by_address.clear()

    def accepted(self, conn: Connection) -> None:
        """A connection the peer opened. Not used if another is open: it may be a
        dial-back probe, closed after its handshake; but a direct one is used over one
        through a relay (the one a peer behind a NAT keeps open to this relay)."""
        known = self._by_node.get(conn.remote.node_id)
        if known is None or known.closed or (known.relayed and not conn.relayed):
            self._by_node[conn.remote.node_id] = conn

    def dialled(self, address: Address, conn: Connection) -> None:
        """A connection this peer opened to `address`; through a relay, it does not take
        the place of a direct one open with the same peer."""
        self._by_address[address] = conn
        node = conn.remote.node_id
        known = self._by_node.get(node)
        if not (conn.relayed and known is not None and usable(known, node) and not known.relayed):
            self._by_node[node] = conn

    def ended(self, conn: Connection, live: Iterable[Connection]) -> None:
        """Forget a connection that ended. Another open with the same peer (among
        `live`) carries its requests from now on: without it they dialled the peer's
        listen address, which behind a NAT never answers, and a relay dropped a
        reservation held open after a 5 s timeout."""
        node = conn.remote.node_id
        if self._by_node.get(node) is conn:
            del self._by_node[node]
            others = [c for c in live if c is not conn and usable(c, node)]
            if others:
                self._by_node[node] = min(others, key=lambda c: c.relayed)
        for address, known in list(self._by_address.items()):
            if known is conn:
                del self._by_address[address]
