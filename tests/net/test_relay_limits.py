"""What a relay takes on: reservations, sessions, tokens and bytes, each under a ceiling
that holds whatever the askers do; refusals say why."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.errors import PeerUnreachable, RemoteError
from p2pbackup.net.contact import Contact
from p2pbackup.net.relay_book import ByteRate, RelayBook, RelayLimits, RelayRefused
from p2pbackup.net.relay_session import open_session
from p2pbackup.net.relay_splice import Splice
from p2pbackup.net.relay_wire import (
    PAIRED,
    SESSION_MAGIC,
    RelayConnect,
    RelayIncoming,
    RelayReserve,
    RelayReserved,
)
from tests.net.bounds_support import FakeClock, contact_of, raw_streams
from tests.net.relay_support import Mesh, wait_for

A, B, C, D = (bytes([n]) * 20 for n in range(1, 5))


def book(clock: FakeClock, **limits: float) -> RelayBook:
    tokens = iter(range(10**6))
    return RelayBook(
        RelayLimits(**limits),  # type: ignore[arg-type]
        clock,
        lambda size: next(tokens).to_bytes(size, "big"),
    )


def test_reservations_are_capped_and_renewing_one_takes_no_new_place() -> None:
    clock = FakeClock()
    relay = book(clock, max_peers=2)
    assert relay.reserve(A) == 120
    relay.reserve(B)
    relay.reserve(A)  # a renewal
    with pytest.raises(RelayRefused, match="full: 2 peers"):
        relay.reserve(C)
    clock.now += 121  # unrenewed reservations lapse, and their places with them
    relay.reserve(C)
    assert not relay.reserved(A)


def test_a_session_needs_the_targets_reservation() -> None:
    relay = book(FakeClock())
    with pytest.raises(RelayRefused, match="holds no reservation"):
        relay.connect(A, B)
    relay.reserve(B)
    with pytest.raises(RelayRefused, match="to itself"):
        relay.connect(B, B)
    token = relay.connect(A, B)
    assert relay.claim(token) is not None


def test_sessions_per_peer_and_tokens_waiting_are_capped() -> None:
    relay = book(FakeClock(), sessions_per_peer=2, max_pending=3, request_burst=100)
    relay.reserve(B)
    relay.reserve(C)
    first = relay.connect(A, B)
    relay.connect(A, B)
    with pytest.raises(RelayRefused, match="already has 2 relayed sessions"):
        relay.connect(D, B)
    relay.started(first)  # a spliced session still counts
    with pytest.raises(RelayRefused, match="already has 2"):
        relay.connect(D, B)
    relay.ended(B)
    relay.connect(D, B)
    relay.connect(D, C)
    with pytest.raises(RelayRefused, match="3 relayed sessions are being set up"):
        relay.connect(D, C)


def test_tokens_expire_and_are_spent_once() -> None:
    clock = FakeClock()
    relay = book(clock, token_ttl=5.0)
    relay.reserve(B)
    token = relay.connect(A, B)
    relay.started(token)
    assert relay.claim(token) is None  # spent
    late = relay.connect(A, B)
    clock.now += 5.0
    assert relay.claim(late) is None  # expired
    assert relay.claim(b"\x00" * 32) is None  # never made


def test_one_identity_asking_too_often_is_refused_with_the_reason() -> None:
    relay = book(FakeClock(), requests_per_second=1.0, request_burst=3)
    relay.reserve(B)
    for _ in range(3):
        relay.connect(A, B)
    with pytest.raises(RelayRefused, match="too many relay requests"):
        relay.connect(A, B)
    relay.connect(C, B)  # another identity has its own budget


def test_a_byte_rate_holds_on_average() -> None:
    rate = ByteRate(1000.0, burst=500.0)
    assert rate.delay(500, 0.0) == 0.0  # the burst passes at once
    assert rate.delay(1000, 0.0) == pytest.approx(1.0)  # the rest waits its time
    assert rate.delay(100, 1.0) == pytest.approx(0.1)
    assert rate.delay(0, 10.0) == 0.0  # and it refills, no further than the burst
    assert rate.delay(600, 10.0) == pytest.approx(0.1)


async def test_beyond_its_caps_a_relay_refuses_with_a_reason(nursery: trio.Nursery) -> None:
    mesh = Mesh(nursery)
    limits = RelayLimits(max_peers=1)
    async with mesh.node(relay=limits) as relay, mesh.node() as one, mesh.node() as two:
        await mesh.relayed(one, lambda: [relay.transport.listen])
        with pytest.raises(RemoteError, match="this relay is full: 1 peers"):
            await two.transport.request(contact_of(relay.transport), RelayReserve(), 5)
        with pytest.raises(RemoteError, match="holds no reservation"):
            await one.transport.request(contact_of(relay.transport), RelayConnect(two.node_id), 5)


async def test_a_peer_that_relays_nothing_closes_relayed_sessions(nursery: trio.Nursery) -> None:
    mesh = Mesh(nursery)
    async with mesh.node() as plain, mesh.node() as asker:
        with pytest.raises(PeerUnreachable, match="refused the session"):
            await open_session(plain.transport.listen, bytes(32), timeout=5)
        reply = await asker.transport.request(contact_of(plain.transport), Ping(), 5)
        assert isinstance(reply.message, Pong)


async def test_a_flood_of_relay_requests_stays_within_the_caps(nursery: trio.Nursery) -> None:
    """One identity asking for sessions as fast as it can gets a few tokens, then reasons;
    and a flood of sessions with made-up tokens holds nothing at the relay."""
    mesh = Mesh(nursery)
    limits = RelayLimits(max_pending=4, sessions_per_peer=8, request_burst=50, token_ttl=0.5)
    async with mesh.node(relay=limits) as relay, mesh.node() as hidden, mesh.node() as flooder:
        await mesh.relayed(hidden, lambda: [relay.transport.listen])
        assert relay.server is not None
        server = relay.server
        reasons: list[str] = []
        for _ in range(60):
            try:
                await flooder.transport.request(
                    contact_of(relay.transport), RelayConnect(hidden.node_id), 5
                )
            except RemoteError as exc:
                reasons.append(str(exc))
            assert len(server.book.pending) <= limits.max_pending
        assert any("4 relayed sessions are being set up" in r for r in reasons)
        assert any("too many relay requests" in r for r in reasons)
        baseline = relay.transport.admission.sockets
        async with raw_streams(40, relay.transport.listen) as streams:
            for stream in streams:
                await stream.send_all(SESSION_MAGIC + Identity.generate().node_id + bytes(12))
            await wait_for(lambda: relay.transport.admission.sockets <= baseline)
            # Only the relayed peer's ends of the tokens really given wait, a while.
            assert server.waiting <= limits.max_pending
        # Those tokens lapse unused, and the peer behind the relay is still there.
        await wait_for(lambda: not server.book.pending and not server.waiting, step=0.05)
        reply = await flooder.transport.request(hidden.contact(), Ping(), timeout=5)
        assert isinstance(reply.message, Pong)


async def test_a_session_token_nobody_was_given_is_refused(nursery: trio.Nursery) -> None:
    mesh = Mesh(nursery)
    async with mesh.node(relay=RelayLimits()) as relay:
        with pytest.raises(PeerUnreachable, match="refused the session"):
            await open_session(relay.transport.listen, bytes(32), timeout=5)


async def test_a_reservation_is_granted_for_its_time_to_live(nursery: trio.Nursery) -> None:
    mesh = Mesh(nursery)
    async with mesh.node(relay=RelayLimits(reservation_ttl=60)) as relay, mesh.node() as asker:
        reply = await asker.transport.request(contact_of(relay.transport), RelayReserve(), 5)
        assert reply.message == RelayReserved(60)


async def test_a_session_opening_that_stalls_is_dropped_as_a_stalled_handshake_is(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """Until its token is read, a session is a stranger like any handshake: counted
    against the cap on strangers, and dropped at the handshake's deadline."""
    mesh = Mesh(nursery)
    async with mesh.node(relay=RelayLimits(token_ttl=60)) as relay:
        transport = relay.transport
        async with raw_streams(1, transport.listen) as (stream,):
            await stream.send_all(SESSION_MAGIC + bytes(5))  # and never the rest of its token
            await wait_for(lambda: transport.admission.sockets == 0, step=0.1)
            assert transport.unauthenticated_count == 0
            assert await stream.receive_some(10) == b""
        assert "no handshake within 2s" in caplog.text


class _JoinersOnly:
    """A gate that takes every remote for a joiner: one holding an invite, not yet a member."""

    def credential(self, transcript: bytes) -> bytes | None:
        return None

    def admit(self, public_key: bytes, credential: bytes | None, transcript: bytes) -> str:
        return "joiner"


async def test_a_relay_serves_members_only(nursery: trio.Nursery) -> None:
    mesh = Mesh(nursery)
    async with mesh.node(relay=RelayLimits()) as relay, mesh.node() as joiner:
        relay.transport.gate = _JoinersOnly()
        with pytest.raises(RemoteError, match="only members"):
            await joiner.transport.request(contact_of(relay.transport), RelayReserve(), 5)
        assert relay.server is not None and not relay.server.book.reservations


async def test_a_relayed_peer_takes_sessions_only_from_its_own_relays(
    nursery: trio.Nursery,
) -> None:
    mesh = Mesh(nursery)
    async with (
        mesh.node(relay=RelayLimits()) as relay,
        mesh.node() as hidden,
        mesh.node(relay=RelayLimits()) as stranger,
    ):
        client = await mesh.relayed(hidden, lambda: [relay.transport.listen])
        incoming = RelayIncoming(bytes(32), stranger.node_id)
        with pytest.raises(RemoteError, match="holds no reservation with you"):
            at = Contact(hidden.node_id, *hidden.transport.bound)  # where it really listens
            await stranger.transport.request(at, incoming, 5)
        assert client.sessions == 0


async def test_a_session_idle_both_ways_is_closed(autojump_clock: trio.testing.MockClock) -> None:
    pairs = [trio.socket.socketpair() for _ in range(2)]
    (first, first_far), (second, second_far) = (
        (trio.SocketStream(a), trio.SocketStream(b)) for a, b in pairs
    )
    splice = Splice((first, b""), (second, b""), (ByteRate(1e9),), idle_timeout=300.0)
    await splice.run()  # returns only once it gives up on the silent session
    assert splice.ending == "idle for 300s"
    assert await first_far.receive_some(10) == PAIRED  # both ends were told, then closed
    assert await first_far.receive_some(10) == b""
    await first_far.aclose()
    await second_far.aclose()
