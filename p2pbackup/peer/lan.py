"""Meeting the peers LAN discovery finds: a checked dial, then a join.

A finding only says "node X listens here". We ping X *as X* (a `Contact`), so
the handshake must prove that very id there; an id that does not match, or a
peer the mesh's gate refuses, costs that one dial and nothing more. A peer
that answers is first-hand and verified, so it enters the routing table; then
we look ourselves up through it, so a peer started with no bootstrap fills
its table from the LAN. `Introductions` bounds the dials a flood of
announcements can cause (decision 0039).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

import trio

from p2pbackup.net.contact import Contact
from p2pbackup.net.lan_announce import Finding, Introductions
from p2pbackup.net.lan_discovery import LanDiscovery
from p2pbackup.peer.peer import Peer

log = logging.getLogger("p2pbackup.lan")


class Discovery(Protocol):
    async def run(self, *, task_status: trio.TaskStatus[None] = ...) -> None: ...


# Makes the discovery for (node id, listen address, tag, on_finding): mDNS by default.
DiscoveryFactory = Callable[[bytes, tuple[str, int], str, Callable[[Finding], None]], Discovery]


class LanMeetings:
    """Run LAN discovery for one peer and meet what it finds."""

    def __init__(
        self,
        peer: Peer,
        tag: str,
        introductions: Introductions | None = None,
        discovery: DiscoveryFactory = LanDiscovery,
        bound: Callable[[], tuple[str, int]] | None = None,
    ) -> None:
        """`bound` gives the address the listener is bound to (perhaps 0.0.0.0), read once
        it listens; by default the transport's advertised one."""
        self.peer = peer
        self._bound = bound or (lambda: peer.transport.listen)
        self.tag = tag
        self.introductions = introductions or Introductions()
        self._discovery = discovery
        self.met = 0  # peers that proved their announced id
        self._meeting = 0  # findings being dialled
        self._nursery: trio.Nursery | None = None
        self._joining = False
        self._join_again = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        discovery = self._discovery(self.peer.node_id, self._bound(), self.tag, self.found)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(discovery.run)
                task_status.started()
        finally:
            self._nursery = None  # closed: a late finding is dropped, not started there

    def found(self, finding: Finding) -> None:
        """Dial a finding's addresses one after the other, as far as the budget allows."""
        if self._nursery is None:
            return
        now = trio.current_time()
        known = self.peer.dht.table.get(finding.node_id)
        addresses = [a for a in finding.addresses if known is None or known.address != a]
        admitted = [a for a in addresses if self.introductions.admit(finding.node_id, a, now)]
        if admitted:
            self._meeting += 1
            self._nursery.start_soon(self._meet, finding.node_id, admitted)

    @property
    def busy(self) -> bool:
        """Whether a finding is still being dialled or joined through."""
        return self._meeting > 0

    async def _meet(self, node_id: bytes, addresses: list[tuple[str, int]]) -> None:
        dht = self.peer.dht
        try:
            for host, port in addresses:
                announced = Contact(node_id, host, port)
                proved = await dht.ping(announced)
                if proved is None or proved.node_id != node_id:
                    log.debug(
                        "LAN peer %s at %s:%d did not prove that id", node_id.hex()[:12], host, port
                    )
                    continue
                if not dht.peers.verified(announced):
                    # It answered over a connection it opened to us, which proves its id but
                    # not the address: dial the address itself (whoever answers there is
                    # proven there, as a dial-back would).
                    await dht.ping(announced.address)
                self.met += 1
                log.info("met %s on the LAN", announced)
                await self._join(announced)
                return
        finally:
            self._meeting -= 1

    async def _join(self, contact: Contact) -> None:
        """Look ourselves up through the mesh; meetings during a walk ask for one more."""
        if self._joining:
            self._join_again = True
            return
        self._joining = True
        try:
            again = True
            while again:
                self._join_again = False
                await self.peer.dht.bootstrap([contact.address])
                again = self._join_again
        finally:
            self._joining = False
