"""The simulator's counterpart of relaying: a peer behind a NAT is reached only through
a relay that holds its reservation, made by the same relay client and server as on TCP."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.errors import PeerUnreachable
from p2pbackup.net.contact import Contact
from p2pbackup.net.relay_book import RelayLimits
from p2pbackup.net.relay_client import RelayClient
from p2pbackup.net.relay_server import RelayServer
from p2pbackup.net.relay_wire import RELAY_SERVER_REQUESTS
from p2pbackup.net.sim import SimNetwork, SimTransport
from p2pbackup.net.transport import Remote
from p2pbackup.wire.messages import Message
from tests.net.relay_support import wait_for


async def _serve(
    nursery: trio.Nursery, transport: SimTransport, server: RelayServer | None = None
) -> trio.CancelScope:
    """Serve `transport` (as a relay with `server`) until the returned scope is cancelled."""
    scope = trio.CancelScope()

    async def handle(remote: Remote, message: Message) -> Message:
        if server is not None and isinstance(message, RELAY_SERVER_REQUESTS):
            return await server.handle(remote, message)
        return Pong()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await transport.serve(handle, task_status=task_status)

    await nursery.start(run)
    return scope


async def test_a_peer_behind_a_nat_is_reached_through_its_relay_and_the_next_one(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    network = SimNetwork(random.Random(7))
    await nursery.start(network.run)
    relays, scopes = [], []
    for n in (1, 2):
        transport = network.transport(Identity.generate(), (f"10.0.0.{n}", 7000))
        server = RelayServer(transport, RelayLimits(), clock=trio.current_time)
        network.carry(transport.listen, server.book.reserved)
        scopes.append(await _serve(nursery, transport, server))
        relays.append(transport)
    hidden = network.transport(Identity.generate(), ("192.168.1.2", 7000), reachable=False)
    dialler = network.transport(Identity.generate(), ("10.0.0.9", 7000))
    await _serve(nursery, hidden)
    await _serve(nursery, dialler)
    client = RelayClient(
        hidden,
        lambda: [relay.listen for relay in relays],
        lambda routes: None,
        want=1,
        check_interval=10.0,
        retry=5.0,
        clock=trio.current_time,
    )
    await nursery.start(client.run)
    await wait_for(lambda: bool(client.live), step=1.0)
    assert set(client.live) == {relays[0].identity.node_id}

    def contact() -> Contact:
        return Contact(hidden.identity.node_id, *hidden.listen, client.routes)

    with pytest.raises(PeerUnreachable, match="behind a NAT"):
        await dialler.request(hidden.listen, Ping(), timeout=5)
    reply = await dialler.request(contact(), Ping(), timeout=5)
    assert isinstance(reply.message, Pong) and reply.dialled == hidden.listen

    old = contact()
    scopes[0].cancel()  # the first relay crashes
    await wait_for(lambda: not network.is_up(relays[0].listen))
    with pytest.raises(PeerUnreachable):
        await dialler.request(old, Ping(), timeout=5)
    await wait_for(lambda: set(client.live) == {relays[1].identity.node_id}, step=1.0)
    reply = await dialler.request(contact(), Ping(), timeout=5)
    assert isinstance(reply.message, Pong)


async def test_a_peer_short_of_relays_takes_one_soon_after_it_comes_to_know_it(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A joining peer nobody can dial wants relays before its table holds any peer that
    could be one; the first comes a second later, and is reserved with at once, not
    after the client's whole `retry`."""
    network = SimNetwork(random.Random(8))
    await nursery.start(network.run)
    relay = network.transport(Identity.generate(), ("10.0.0.1", 7000))
    server = RelayServer(relay, RelayLimits(), clock=trio.current_time)
    network.carry(relay.listen, server.book.reserved)
    await _serve(nursery, relay, server)
    hidden = network.transport(Identity.generate(), ("192.168.1.2", 7000), reachable=False)
    await _serve(nursery, hidden)
    known: list[tuple[str, int]] = []
    client = RelayClient(
        hidden, lambda: list(known), lambda routes: None, want=1, retry=5.0, clock=trio.current_time
    )
    await nursery.start(client.run)
    await trio.sleep(1.0)
    known.append(relay.listen)  # the table has met its first peer
    met = trio.current_time()
    await wait_for(lambda: bool(client.live), step=0.05)
    assert trio.current_time() - met < 2.0  # looked again within a second; was 4 s later
