"""Dial-backs over real sockets: a checker probes with a fresh connection, a contact is
verified through its routes, and naming someone else in routes buys no extra dials."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.dial_me_back import DialBackResponder, DialledBack, DialMeBack
from p2pbackup.dht.messages import FindNode, Nodes, Pong
from p2pbackup.errors import PeerUnreachable
from p2pbackup.net.contact import Contact, Route, format_address
from p2pbackup.net.handshake import Handshake
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.probe import probe
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Address, Remote
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.wire.frames import FrameDecoder, encode_frame
from p2pbackup.wire.messages import Message, decode_message, encode_message
from tests.net.bounds_support import FakeClock, counting_listener, read_frame, running_in, serving

OPTIONS = TcpOptions(handshake_timeout=2.0, frame_timeout=2.0)
FLOOD = 50


def closed_port() -> Address:
    """An address on loopback nobody listens on (a port just freed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return ("127.0.0.1", sock.getsockname()[1])


@asynccontextmanager
async def checker(nursery: trio.Nursery) -> AsyncIterator[TcpTransport]:
    """A transport that answers dial-back requests, and Pings."""
    holder: list[TcpTransport] = []

    async def handle(remote: Remote, message: Message) -> Message:
        if isinstance(message, DialMeBack):
            return await DialBackResponder(partial(probe, holder[0]), timeout=2.0).handle(
                remote, message
            )
        return Pong()

    async with serving(nursery, OPTIONS, handle) as transport:
        holder.append(transport)
        yield transport


async def ask(asker: TcpTransport, at: TcpTransport, address: Address) -> DialledBack:
    reply = await asker.request(
        Contact(at.identity.node_id, *at.listen), DialMeBack(format_address(address)), 10
    )
    assert isinstance(reply.message, DialledBack)
    return reply.message


async def test_a_checker_confirms_only_an_address_where_the_asker_answers_a_fresh_dial(
    nursery: trio.Nursery,
) -> None:
    async with (
        checker(nursery) as at,
        serving(nursery, OPTIONS) as asker,
        serving(nursery, OPTIONS) as someone_else,
    ):
        assert await ask(asker, at, asker.listen) == DialledBack(True, True)
        # The asker's own connection to the checker is open now: it must not be taken
        # for an answer at an address nobody listens on, nor at someone else's.
        refused = await ask(asker, at, closed_port())
        assert refused.tried and not refused.ok and "cannot connect" in refused.reason
        other = await ask(asker, at, someone_else.listen)
        assert other.tried and not other.ok and "expected peer" in other.reason


async def test_a_probe_fails_on_a_listener_that_speaks_nothing(nursery: trio.Nursery) -> None:
    async with counting_listener(nursery) as silent, serving(nursery, OPTIONS) as prober:
        try:
            await probe(prober, silent.address, bytes(20), 2.0)
        except PeerUnreachable:
            pass
        else:
            raise AssertionError("a silent listener passed for a peer")
        assert silent.dialled == 1


async def test_a_checker_refuses_before_dialling_anyone_else() -> None:
    dialled: list[Address] = []

    async def recording(address: Address, node_id: bytes, timeout: float) -> None:
        dialled.append(address)

    responder = DialBackResponder(recording)

    async def answer(far: Address | None, target: str) -> DialledBack:
        reply = await responder.handle(
            Remote(bytes(20), bytes(32), None, far=far), DialMeBack(target)
        )
        assert isinstance(reply, DialledBack)
        return reply

    elsewhere = await answer(("198.51.100.7", 50000), "203.0.113.1:80")
    assert not elsewhere.tried and "comes from" in elsewhere.reason
    assert not (await answer(None, "198.51.100.7:7000")).tried  # through a relay
    assert dialled == []
    assert (await answer(("198.51.100.7", 50000), "198.51.100.7:7000")).ok
    assert dialled == [("198.51.100.7", 7000)]


async def test_a_checker_takes_one_check_per_asker_and_a_few_in_all() -> None:
    release = trio.Event()

    async def slow(address: Address, node_id: bytes, timeout: float) -> None:
        await release.wait()

    responder = DialBackResponder(slow, at_once=2)
    askers = [Remote(bytes([i]) * 20, bytes(32), None, far=("127.0.0.1", 1)) for i in range(3)]
    answers: list[DialledBack] = []

    async def one(remote: Remote) -> None:
        answer = await responder.handle(remote, DialMeBack("127.0.0.1:7000"))
        assert isinstance(answer, DialledBack)
        answers.append(answer)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, askers[0])
        nursery.start_soon(one, askers[1])
        await trio.testing.wait_all_tasks_blocked()
        await one(askers[0])  # the same asker again, while its check runs
        await one(askers[2])  # a third, while two run
        assert [a.reason for a in answers] == [
            "one check at a time",
            "too many checks under way; ask again later",
        ]
        release.set()
    assert sum(a.ok for a in answers) == 2


@asynccontextmanager
async def running_peer(nursery: trio.Nursery) -> AsyncIterator[Peer]:
    dht = DhtConfig(rpc_timeout=2.0, exempt_blocks=frozenset({"loopback"}))
    transport = TcpTransport(Identity.generate(), ("127.0.0.1", 0), OPTIONS, clock=FakeClock())
    peer = Peer(transport.identity, transport, PeerConfig(dht=dht), random.Random(7))
    async with running_in(nursery, peer.run):
        yield peer


async def settled(peer: Peer) -> None:
    while peer.dht.checks_pending:
        await trio.sleep(0.01)


async def test_a_peer_undialable_at_its_main_address_is_verified_through_a_route(
    nursery: trio.Nursery,
) -> None:
    """A peer behind a NAT names its public side (undialable) and a route that works."""
    async with running_peer(nursery) as peer, serving(nursery, OPTIONS) as behind:
        main = closed_port()
        behind.set_advertised(main, (Route(*behind.bound),))
        pong = await behind.request(
            Contact(peer.node_id, *peer.transport.listen), FindNode(bytes(20)), 5
        )
        assert isinstance(pong.message, Nodes)
        await settled(peer)
        contact = Contact(behind.identity.node_id, *main, (Route(*behind.bound),))
        assert peer.dht.peers.verified(contact)
        assert peer.dht.table.get(behind.identity.node_id) == contact


async def _ping_naming(peer: Peer, main: Address, routes: tuple[Route, ...]) -> Identity:
    """Connect as a fresh identity that says it is at `main`, dialled by `routes`."""
    identity = Identity.generate()
    stream = await trio.open_tcp_stream(*peer.transport.listen)
    try:
        handshake = Handshake(identity, initiator=True, listen=main, routes=routes)
        decoder = FrameDecoder(1 << 20)
        await stream.send_all(encode_frame(handshake.hello()))
        proof = handshake.receive_hello(await read_frame(stream, decoder))
        await stream.send_all(encode_frame(proof))
        channel = handshake.receive_auth(await read_frame(stream, decoder)).channel
        await stream.send_all(
            encode_frame(channel.seal(encode_message(0, FindNode(identity.node_id))))
        )
        _, reply = decode_message(channel.open(await read_frame(stream, decoder)))
        assert isinstance(reply, Nodes)
    finally:
        await trio.aclose_forcefully(stream)
    return identity


async def test_a_flood_naming_a_victim_in_its_routes_dials_the_victim_once(
    nursery: trio.Nursery,
) -> None:
    async with counting_listener(nursery) as victim, running_peer(nursery) as peer:
        liars = []
        for _wave in range(2):  # the same flood again, within the cooldown
            for _ in range(FLOOD // 2):
                liars.append(await _ping_naming(peer, closed_port(), (Route(*victim.address),)))
            await settled(peer)
        assert victim.dialled == 1  # one dial-back for the address, whoever named it
        assert not any(liar.node_id in peer.dht.table for liar in liars)


async def test_a_probe_the_dial_budget_forbids_is_not_a_failed_check(nursery: trio.Nursery) -> None:
    """Dials per address are bounded; a check refused for that says nothing of the address."""
    tight = TcpOptions(handshake_timeout=2.0, dials_per_minute=1, dial_burst=1)
    async with serving(nursery, OPTIONS) as asker, serving(nursery, tight) as at:
        responder = DialBackResponder(partial(probe, at), timeout=2.0)
        remote = Remote(asker.identity.node_id, bytes(32), None, far=asker.listen)
        target = DialMeBack(format_address(asker.listen))
        assert await responder.handle(remote, target) == DialledBack(True, True)
        again = await responder.handle(remote, target)
        assert isinstance(again, DialledBack) and not again.tried
        assert "dialled too often" in again.reason
