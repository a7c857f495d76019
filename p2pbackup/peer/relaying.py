"""A peer's part in relaying: serving as a relay for others, dialling through relays,
and (when nobody can dial it) holding reservations of its own (decision 0040).

Every peer dials through relays: a contact may name only relay routes. A
peer serves as a relay unless told not to, within its limits. Holding
reservations is for a peer others cannot dial; `--relay-only` forces it,
and the peer then advertises its relay routes alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.reachability import dialable_outside
from p2pbackup.net.relay_book import RelayLimits
from p2pbackup.net.relay_client import Candidate, RelayClient, RelayConnector
from p2pbackup.net.relay_server import RelayServer
from p2pbackup.net.relay_wire import RELAY_CLIENT_REQUESTS, RELAY_SERVER_REQUESTS
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Address
from p2pbackup.peer.peer import Peer

log = logging.getLogger("p2pbackup.peer.relaying")

# How many relays a peer nobody can dial keeps a reservation with.
RELAYS_WANTED = 2


@dataclass(frozen=True)
class RelayOptions:
    serve: bool = True  # act as a relay for others, within `limits`
    limits: RelayLimits = field(default_factory=RelayLimits)
    # Relays to reserve with first (then peers of the routing table).
    through: tuple[Address, ...] = ()
    # Hold reservations and advertise only the relay routes, whatever else is true.
    only: bool = False
    # Try a direct connection (TCP hole punch) before settling for a relayed one.
    punch: bool = True


class Relaying:
    """Wires relaying into one peer: its handlers, its dialer and, if asked, its client."""

    def __init__(
        self,
        peer: Peer,
        transport: TcpTransport,
        options: RelayOptions,
        on_event: Callable[..., None] = lambda name, **fields: None,
    ) -> None:
        self.peer = peer
        self.transport = transport
        self.options = options
        self._on_event = on_event
        # Whoever decides how this peer is reached hears its live relay routes here.
        self.on_routes: Callable[[tuple[Route, ...]], None] | None = None
        public_host = self._public_host if options.punch else None
        self.connector = RelayConnector(transport, public_host=public_host)
        transport.relay_dialer = self.connector
        self.server: RelayServer | None = None
        if options.serve:
            self.server = RelayServer(transport, options.limits)
            self.server.attach()
            for kind in RELAY_SERVER_REQUESTS:
                peer.add_handler(kind, self.server.handle)
        self.client = RelayClient(
            transport, self._candidates, self._advertise, want=0, punch=options.punch
        )
        for kind in RELAY_CLIENT_REQUESTS:
            peer.add_handler(kind, self.client.handle)
        peer.add_task(self.client.run)
        if options.only:
            self.need_relays(True)

    def need_relays(self, needed: bool) -> None:
        """Hold reservations (or give them up as they lapse): for whoever decides
        whether others can dial this peer."""
        self.client.set_want(RELAYS_WANTED if needed else 0)

    def _public_host(self) -> str | None:
        """Where others see this peer from, as its relays last said."""
        return next(iter(self.client.observed.values()), None) or self.connector.seen_host

    def _candidates(self) -> Iterator[Candidate]:
        yield from self.options.through
        for contact in self.peer.dht.table:
            if _dialable(contact):
                yield contact

    def _advertise(self, routes: tuple[Route, ...]) -> None:
        if self.options.only:
            self.transport.set_advertised(self.transport.listen, routes)
        if self.on_routes is not None:
            self.on_routes(routes)
        self._on_event("relayed", routes=[str(route) for route in routes])
        log.info("reachable through %s", ", ".join(map(str, routes)) or "no relay")


def _dialable(contact: Contact) -> bool:
    """Whether others can dial a contact directly, so it can relay for us: not relayed
    itself, and with an address outside any LAN (its main one, or a direct route)."""
    relayed = any(route.relay is not None for route in contact.routes)
    return not relayed and dialable_outside(contact)
