"""A contact's routes: their wire form, the handshake carrying them, and dialling them."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import p2pbackup.dht.messages  # noqa: F401  (registers the DHT messages)
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.errors import HandshakeError, WireError
from p2pbackup.net.contact import CONTACT_CHECK, Contact, Route, parse_address
from p2pbackup.net.handshake import Handshake
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.tcp import TcpTransport
from tests.net.bounds_support import serving

OPTIONS = TcpOptions(handshake_timeout=2.0, frame_timeout=2.0, dial_attempt_timeout=0.5)

hosts = st.sampled_from(["127.0.0.1", "10.0.0.7", "::1", "fe80::1", "peer.example.org"])
routes = st.builds(
    Route,
    hosts,
    st.integers(1, 65535),
    st.none() | st.binary(min_size=20, max_size=20),
)


@given(routes)
def test_a_route_survives_its_wire_form(route: Route) -> None:
    assert Route.parse(str(route)) == route


@given(st.lists(routes, max_size=8))
def test_a_contact_with_routes_survives_its_wire_form(some: list[Route]) -> None:
    contact = Contact(bytes(20), "198.51.100.4", 4000, tuple(some))
    assert Contact.from_wire(CONTACT_CHECK(contact.to_wire())) == contact


@pytest.mark.parametrize(
    "text", ["relay:zz@1.2.3.4:5", "relay:00@1.2.3.4:5", "1.2.3.4", "::1:80", "[::1]:0", "x:99999"]
)
def test_malformed_routes_are_refused(text: str) -> None:
    with pytest.raises(WireError):
        Route.parse(text)


def test_a_contact_with_a_malformed_route_is_refused() -> None:
    wire = Contact(bytes(20), "1.2.3.4", 5).to_wire() | {"r": ["not a route"]}
    with pytest.raises(WireError):
        CONTACT_CHECK(wire)


def test_ipv6_addresses_are_written_in_brackets() -> None:
    assert parse_address("[::1]:7000") == ("::1", 7000)
    assert str(Route("::1", 7000)) == "[::1]:7000"


def _shake(a: Handshake, b: Handshake) -> tuple[object, object]:
    proof_a, proof_b = a.receive_hello(b.hello()), b.receive_hello(a.hello())
    return a.receive_auth(proof_b), b.receive_auth(proof_a)


def test_hellos_carry_routes_and_the_address_each_side_sees() -> None:
    relay = Route("203.0.113.9", 7000, bytes(range(20)))
    a = Handshake(
        Identity.generate(), initiator=True, listen=("10.0.0.2", 7000), seen=("198.51.100.1", 7001)
    )
    b = Handshake(
        Identity.generate(),
        initiator=False,
        listen=("198.51.100.1", 7001),
        routes=(relay,),
        seen=("203.0.113.50", 40000),
    )
    at_a, at_b = _shake(a, b)
    assert at_a.remote.routes == (relay,)  # type: ignore[attr-defined]
    assert at_a.remote.observed == ("203.0.113.50", 40000)  # type: ignore[attr-defined]
    assert at_b.remote.observed == ("198.51.100.1", 7001)  # type: ignore[attr-defined]
    assert at_a.remote.contact().routes == (relay,)  # type: ignore[attr-defined]


class _Refuser:
    def credential(self, transcript: bytes) -> bytes | None:
        return b"nothing"

    def admit(self, public_key: bytes, credential: bytes | None, transcript: bytes) -> str:
        raise HandshakeError(f"not a member (showed {credential!r})")


def test_a_gate_refuses_in_the_handshake_and_sees_the_credential() -> None:
    a = Handshake(Identity.generate(), initiator=True, listen=None)
    b = Handshake(Identity.generate(), initiator=False, listen=None, gate=_Refuser())
    proof_a = a.receive_hello(b.hello())
    b.receive_hello(a.hello())
    with pytest.raises(HandshakeError, match="not a member"):
        b.receive_auth(proof_a)


async def test_a_dead_route_is_passed_over_for_the_next(nursery: trio.Nursery) -> None:
    async with serving(nursery, OPTIONS) as server, serving(nursery, OPTIONS) as client:
        dead = trio.socket.socket()
        await dead.bind(("127.0.0.1", 0))  # bound, never listening: refused at once
        contact = Contact(
            server.identity.node_id,
            "127.0.0.1",
            dead.getsockname()[1],
            (Route("127.0.0.1", dead.getsockname()[1]), Route(*server.listen)),
        )
        reply = await client.request(contact, Ping(), timeout=5)
        assert isinstance(reply.message, Pong)
        assert reply.dialled == contact.address
        dead.close()


async def test_a_route_that_swallows_the_dial_does_not_hold_up_the_next(
    nursery: trio.Nursery,
) -> None:
    """A NATed peer's LAN address dialled from outside takes the dial and never answers;
    its next route (a relay, here a plain one) is tried a moment later, not after the
    attempt timeout, so a request with less time than that still gets through."""
    options = TcpOptions(handshake_timeout=10.0, frame_timeout=2.0, dial_attempt_timeout=3.0)
    async with serving(nursery, options) as server, serving(nursery, options) as client:
        swallower = trio.socket.socket()
        await swallower.bind(("127.0.0.1", 0))
        swallower.listen(8)  # the kernel completes the connect; nobody ever answers
        port = swallower.getsockname()[1]
        contact = Contact(
            server.identity.node_id,
            "127.0.0.1",
            port,
            (Route("127.0.0.1", port), Route(*server.listen)),
        )
        reply = await client.request(contact, Ping(), timeout=1.5)
        assert isinstance(reply.message, Pong)
        swallower.close()


async def test_advertised_routes_reach_the_other_side(nursery: trio.Nursery) -> None:
    async with serving(nursery, OPTIONS) as server, serving(nursery, OPTIONS) as client:
        lan = Route("10.1.2.3", 7000)
        server.set_advertised(("198.51.100.7", 7000), (lan, Route(*server.bound)))
        assert isinstance(server, TcpTransport) and server.listen == ("198.51.100.7", 7000)
        reply = await client.request(server.bound, Ping(), timeout=5)
        assert reply.remote.listen == ("198.51.100.7", 7000)
        assert reply.remote.routes == (lan, Route(*server.bound))
        # The server saw the client's connection come from loopback (an ephemeral port).
        assert reply.remote.observed is not None and reply.remote.observed[0] == "127.0.0.1"
