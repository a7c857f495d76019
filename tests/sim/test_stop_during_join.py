"""A peer stopped while it joins stops cleanly: its walk may finish after the DHT's
upkeep nursery has closed, and must not start a task there (a SIGTERM during a
restart's join ended `serve` with a traceback and exit status 1)."""

from __future__ import annotations

import random

import trio
import trio.testing

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.joining import join
from p2pbackup.dht.messages import Pong
from p2pbackup.net.sim import SimNetwork
from p2pbackup.net.transport import Remote
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.wire.messages import Message
from tests.sim.helpers import TEST_DHT


async def _pong(remote: Remote, message: Message) -> Message:
    return Pong()


async def test_a_join_that_ends_after_the_upkeep_stopped_starts_nothing(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    network = SimNetwork(random.Random(1))
    await nursery.start(network.run)
    bootstrap = network.transport(Identity.from_seed(bytes([1]) * 32), ("10.0.1.1", 4000))
    await nursery.start(bootstrap.serve, _pong)
    identity = Identity.from_seed(bytes(32))
    transport = network.transport(identity, ("10.0.0.1", 4000))
    peer = Peer(identity, transport, PeerConfig(dht=TEST_DHT), random.Random(1))

    with trio.CancelScope() as upkeep:
        async with trio.open_nursery() as inner:
            await inner.start(peer.dht.run)
            assert peer.dht.nursery is not None
            upkeep.cancel()
    assert peer.dht.nursery is None  # closed: nobody may start a task in it

    assert await join(peer.dht, [bootstrap.listen]) == 1  # walks, and starts no second look
