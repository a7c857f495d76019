"""What a peer serves a remote the handshake admitted only as a joiner: the redeem alone."""

from __future__ import annotations

import random

import pytest
import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import FindNode, Ping
from p2pbackup.errors import P2PBackupError
from p2pbackup.mesh.messages import RedeemInvite
from p2pbackup.net.sim import SimNetwork
from p2pbackup.net.transport import Remote
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.wire.messages import Message


def _remote(standing: str) -> Remote:
    stranger = Identity.generate()
    return Remote(stranger.node_id, stranger.public_key, ("127.0.0.9", 4000), standing=standing)


def test_a_joiner_may_redeem_and_nothing_else_and_never_enters_the_table() -> None:
    async def main() -> None:
        network = SimNetwork(random.Random(1))
        peer = Peer(
            Identity.generate(),
            network.transport(Identity.generate(), ("127.0.0.1", 4000)),
            PeerConfig(),
            random.Random(2),
        )
        redeemed: list[Remote] = []

        async def redeem(remote: Remote, message: Message) -> Message:
            redeemed.append(remote)
            return message

        peer.add_handler(RedeemInvite, redeem)
        joiner = _remote("joiner")
        for request in (Ping(), FindNode(bytes(20))):
            with pytest.raises(P2PBackupError, match="not a member of this mesh"):
                await peer.handle(joiner, request)
        await peer.handle(joiner, RedeemInvite(bytes(32), "laptop", bytes(64)))
        assert redeemed == [joiner]
        peer.dht.observe(joiner)  # not even a dial-back to see where it listens
        assert peer.dht.checks_pending == 0 and joiner.node_id not in peer.dht.table
        member = _remote("member")
        assert isinstance(await peer.handle(member, FindNode(bytes(20))), Message)
        assert peer.dht.checks_pending == 1

    trio.run(main)
