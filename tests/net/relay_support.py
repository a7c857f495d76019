"""A relay, a relayed peer and a dialler on 127.0.0.1, for the relay tests.

The relayed peer listens on loopback like the others, but names as its main
address one nobody listens at (its port on 127.0.0.2, where nothing of it is
bound) and advertises only its relay routes: a dialler that follows its
contact reaches it through a relay or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

import p2pbackup.dht.messages
import p2pbackup.shares.messages  # noqa: F401
from p2pbackup.dht.messages import Pong
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.relay_book import RelayLimits
from p2pbackup.net.relay_client import Candidate, RelayClient, RelayConnector
from p2pbackup.net.relay_server import RelayServer
from p2pbackup.net.relay_splice import Tap
from p2pbackup.net.relay_wire import RELAY_CLIENT_REQUESTS, RELAY_SERVER_REQUESTS
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.shares.messages import GetShare, PutShare, ShareData, ShareStored
from p2pbackup.wire.messages import Message
from tests.net.bounds_support import serving

OPTIONS = TcpOptions(
    handshake_timeout=2.0, frame_timeout=5.0, dial_attempt_timeout=2.0, dials_per_minute=600
)
# Where a relayed peer says it is: loopback, but not where it listens, so refused at once.
UNREACHABLE_HOST = "127.0.0.2"


async def answer(remote: Remote, message: Message) -> Message:
    """Ping answers Pong; PutShare is acknowledged; GetShare returns a 1 MiB share."""
    if isinstance(message, PutShare):
        return ShareStored()
    if isinstance(message, GetShare):
        return ShareData(0, b"d", bytes(range(256)) * 4096)
    return Pong()


class Node:
    """A transport with its relay server, relay client and connector wired as a peer does."""

    def __init__(self, transport: TcpTransport) -> None:
        self.transport = transport
        self.server: RelayServer | None = None
        self.client: RelayClient | None = None
        transport.relay_dialer = RelayConnector(transport, timeout=3.0)

    @property
    def node_id(self) -> bytes:
        return self.transport.identity.node_id

    def contact(self) -> Contact:
        return Contact(self.node_id, *self.transport.listen, self.transport.routes)

    async def handle(self, remote: Remote, message: Message) -> Message:
        if self.server is not None and isinstance(message, RELAY_SERVER_REQUESTS):
            return await self.server.handle(remote, message)
        if self.client is not None and isinstance(message, RELAY_CLIENT_REQUESTS):
            return await self.client.handle(remote, message)
        return await answer(remote, message)


@dataclass
class Mesh:
    nursery: trio.Nursery

    @asynccontextmanager
    async def node(
        self,
        *,
        relay: RelayLimits | None = None,
        tap: Tap | None = None,
        options: TcpOptions = OPTIONS,
    ) -> AsyncIterator[Node]:
        holder: list[Node] = []

        async def handle(remote: Remote, message: Message) -> Message:
            return await holder[0].handle(remote, message)

        async with serving(self.nursery, options, handle, clock=trio.current_time) as transport:
            node = Node(transport)
            holder.append(node)
            if relay is not None:
                node.server = RelayServer(transport, relay, clock=trio.current_time, tap=tap)
                node.server.attach()
            yield node

    async def relayed(
        self,
        node: Node,
        candidates: Callable[[], list[Candidate]],
        *,
        want: int = 1,
        check_interval: float = 30.0,
    ) -> RelayClient:
        """Make `node` reachable only through relays among `candidates`; returns once it
        holds `want` reservations."""
        transport = node.transport

        def advertise(routes: tuple[Route, ...]) -> None:
            transport.set_advertised((UNREACHABLE_HOST, transport.bound[1]), routes)

        advertise(())
        client = RelayClient(
            transport,
            candidates,
            advertise,
            want=want,
            timeout=3.0,
            check_interval=check_interval,
            retry=0.2,
            clock=trio.current_time,
        )
        node.client = client
        await self.nursery.start(client.run)
        await wait_for(lambda: len(client.live) >= want)
        return client


async def wait_for(condition: Callable[[], bool], step: float = 0.01) -> None:
    """Return once `condition` holds (the test's own timeout bounds the wait)."""
    while not condition():
        await trio.sleep(step)
