"""Finding 7: addresses taken on trust.

Fifty identities connect to a real peer over TCP, each claiming in its
handshake to listen at an address that belongs to someone else (a listener
this test owns and that counts who dials it), and each sends a request. The
peer may check the claim by dialling it back, once a minute for the address
whatever id claimed it; it must neither put the claimants in its routing
table nor hand them out in FIND_NODE replies. An honest peer that listens
where it says is checked the same way and is handed out.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.messages import FindNode, Nodes, Ping, Pong
from p2pbackup.net.contact import Contact
from p2pbackup.net.handshake import Handshake, SecureChannel
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.wire.frames import FrameDecoder, encode_frame
from p2pbackup.wire.messages import decode_message, encode_message
from tests.net.bounds_support import (
    FakeClock,
    counting_listener,
    read_frame,
    running_in,
    serving,
)

CLAIMANTS = 50


@asynccontextmanager
async def running_peer(nursery: trio.Nursery) -> AsyncIterator[Peer]:
    """A whole peer (DHT and all) on 127.0.0.1, loopback exempt as a local mesh has it."""
    dht = DhtConfig(rpc_timeout=2.0, exempt_blocks=frozenset({"loopback"}))
    transport = TcpTransport(Identity.generate(), ("127.0.0.1", 0), TcpOptions(), clock=FakeClock())
    peer = Peer(transport.identity, transport, PeerConfig(dht=dht), random.Random(7))
    async with running_in(nursery, peer.run):
        yield peer


async def _join_as(
    stream: trio.SocketStream, identity: Identity, claimed: tuple[str, int]
) -> tuple[SecureChannel, FrameDecoder]:
    """Complete the handshake on `stream` as `identity`, saying it listens at `claimed`."""
    handshake = Handshake(identity, initiator=True, listen=claimed)
    decoder = FrameDecoder(1 << 20)
    await stream.send_all(encode_frame(handshake.hello()))
    proof = handshake.receive_hello(await read_frame(stream, decoder))
    await stream.send_all(encode_frame(proof))
    return handshake.receive_auth(await read_frame(stream, decoder)).channel, decoder


async def claim_and_ping(peer: Peer, claimed: tuple[str, int]) -> Identity:
    """Connect as a fresh identity that says it listens at `claimed`; send one FIND_NODE
    (an introduction: a PING introduces nobody)."""
    identity = Identity.generate()
    stream = await trio.open_tcp_stream(*peer.transport.listen)
    try:
        channel, decoder = await _join_as(stream, identity, claimed)
        await stream.send_all(
            encode_frame(channel.seal(encode_message(0, FindNode(identity.node_id))))
        )
        _, reply = decode_message(channel.open(await read_frame(stream, decoder)))
        assert isinstance(reply, Nodes)
    finally:
        await trio.aclose_forcefully(stream)
    return identity


async def settled(peer: Peer) -> None:
    """The peer has finished checking the addresses it was told."""
    while peer.dht.checks_pending:
        await trio.sleep(0.01)


async def test_fifty_identities_claiming_another_address_are_not_dialled_nor_handed_out(
    nursery: trio.Nursery,
) -> None:
    async with (
        counting_listener(nursery) as victim,
        running_peer(nursery) as peer,
        serving(nursery, TcpOptions()) as honest,
        serving(nursery, TcpOptions()) as asker,
    ):
        claimants = []
        for _wave in range(2):  # the same flood again, within the minute
            claimants += [await claim_and_ping(peer, victim.address) for _ in range(25)]
            await settled(peer)
        assert len(claimants) == CLAIMANTS
        # An honest peer listening where it says is checked and then handed out.
        pong = await honest.request(
            Contact(peer.node_id, *peer.transport.listen), FindNode(bytes(20)), 5
        )
        assert isinstance(pong.message, Nodes)
        await settled(peer)

        assert victim.dialled <= 1  # one dial-back for the address, whoever claimed it
        assert not any(c.node_id in peer.dht.table for c in claimants)
        at_peer = Contact(peer.node_id, *peer.transport.listen)
        seen: set[tuple[bytes, tuple[str, int]]] = set()
        for target in [c.node_id for c in claimants[:10]] + [honest.identity.node_id]:
            reply = await asker.request(at_peer, FindNode(target), 5)
            assert isinstance(reply.message, Nodes)
            seen |= {(c.node_id, c.address) for c in reply.message.contacts}
        assert not any(address == victim.address for _, address in seen)
        assert (honest.identity.node_id, honest.listen) in seen
        assert peer.dht.table.get(honest.identity.node_id) == Contact(
            honest.identity.node_id, *honest.listen
        )


async def answer_over_own_connection(
    peer: Peer, claimed: tuple[str, int], connected: trio.Event, identity: Identity
) -> None:
    """Connect claiming `claimed`, then answer every request the peer sends back on it."""
    stream = await trio.open_tcp_stream(*peer.transport.listen)
    try:
        channel, decoder = await _join_as(stream, identity, claimed)
        connected.set()
        while True:
            request_id, _ = decode_message(channel.open(await read_frame(stream, decoder)))
            await stream.send_all(encode_frame(channel.seal(encode_message(request_id, Pong()))))
    finally:
        await trio.aclose_forcefully(stream)


async def test_an_answer_over_the_claimants_own_connection_does_not_verify_its_claim(
    nursery: trio.Nursery,
) -> None:
    """The transport reuses a connection the remote opened for a request to its id; a
    reply over it proves the id, not that the id listens at the address we asked for."""
    async with counting_listener(nursery) as victim, running_peer(nursery) as peer:
        liar, connected = Identity.generate(), trio.Event()
        async with trio.open_nursery() as inner:
            inner.start_soon(answer_over_own_connection, peer, victim.address, connected, liar)
            await connected.wait()
            transport = peer.transport
            assert isinstance(transport, TcpTransport)
            while not transport.connection_count:  # the peer's side is through it too
                await trio.sleep(0.01)
            claimed = Contact(liar.node_id, *victim.address)
            # As a lookup would, having been told of `claimed` by a colluder.
            assert isinstance(await peer.dht.call(claimed, Ping()), Pong)
            await settled(peer)
            assert not peer.dht.peers.verified(claimed)
            assert liar.node_id not in peer.dht.table
            inner.cancel_scope.cancel()
