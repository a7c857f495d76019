"""A dial-back probe's connection never carries the asker's requests."""

from __future__ import annotations

import trio

import p2pbackup.dht.messages  # noqa: F401  (registers the DHT messages)
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.probe import probe
from tests.net.bounds_support import contact_of, serving

OPTIONS = TcpOptions(handshake_timeout=2.0, frame_timeout=2.0)


async def test_requests_keep_to_the_open_connection_while_a_probe_comes_and_goes(
    nursery: trio.Nursery,
) -> None:
    async with serving(nursery, OPTIONS) as asker, serving(nursery, OPTIONS) as checker:
        await asker.request(contact_of(checker), Ping(), timeout=5)  # the asker's connection
        for _ in range(5):
            # The checker dials the asker afresh, proves itself, and hangs up at once.
            await probe(checker, asker.listen, asker.identity.node_id, timeout=5)
            reply = await asker.request(contact_of(checker), Ping(), timeout=5)
            assert isinstance(reply.message, Pong)
