"""Hole punching coordinated through a relay, on 127.0.0.1: when both sides try, the
connection goes direct and the relay carries nothing; when the try fails, the relay does."""

from __future__ import annotations

import pytest
import trio

from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.net import hole_punch
from p2pbackup.net.hole_punch import PunchPort, offers, targets
from p2pbackup.net.relay_book import RelayLimits
from p2pbackup.net.relay_client import RelayConnector
from p2pbackup.shares.messages import PutShare, ShareStored
from tests.net.relay_support import Mesh, Node


def test_offers_name_each_host_once_with_the_punch_port() -> None:
    assert offers(["203.0.113.5", "203.0.113.5", "0.0.0.0", "::1"], 4000) == (
        "203.0.113.5:4000",
        "[::1]:4000",
    )


def test_only_well_formed_targets_are_dialled_and_only_a_few() -> None:
    told = ("1.2.3.4:5", "nonsense", "0.0.0.0:7", "[::1]:8", "5.6.7.8:9", "9.9.9.9:1")
    assert targets(told) == [("1.2.3.4", 5), ("::1", 8)]  # the first four looked at
    assert targets(None) == []


async def test_both_ends_of_a_punch_get_the_same_connection() -> None:
    answering = PunchPort("127.0.0.1", listen=True)
    dialling = PunchPort("127.0.0.1", listen=False)
    await answering.open()
    await dialling.open()
    got: dict[str, trio.SocketStream | None] = {}

    async def run(name: str, port: PunchPort, other: PunchPort, window: float) -> None:
        got[name] = await port.run([("127.0.0.1", other.port)], window)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a", answering, dialling, 3.0)
            nursery.start_soon(run, "d", dialling, answering, 2.0)
        a, d = got["a"], got["d"]
        assert a is not None and d is not None
        # One TCP connection, from the punch port to the punch port.
        assert d.socket.getsockname()[1] == dialling.port
        assert d.socket.getpeername()[1] == answering.port
        await d.send_all(b"through")
        assert await a.receive_some(7) == b"through"
        await a.aclose()
        await d.aclose()
    finally:
        answering.close()
        dialling.close()


def _punching(node: Node) -> RelayConnector:
    """`node` dials relayed peers trying a punch first, as seen from 127.0.0.1."""
    connector = RelayConnector(node.transport, timeout=3.0, public_host=lambda: "127.0.0.1")
    node.transport.relay_dialer = connector
    return connector


async def test_a_punch_through_the_relay_goes_direct(nursery: trio.Nursery) -> None:
    mesh = Mesh(nursery)
    async with (
        mesh.node(relay=RelayLimits()) as relay,
        mesh.node() as hidden,
        mesh.node() as dialler,
    ):
        client = await mesh.relayed(hidden, lambda: [relay.transport.listen])
        client.punch = True
        connector = _punching(dialler)
        reply = await dialler.transport.request(hidden.contact(), Ping(), timeout=10)
        assert isinstance(reply.message, Pong) and reply.remote.node_id == hidden.node_id
        share = PutShare(bytes(20), 0, b"descriptor", bytes(512 * 1024))
        stored = await dialler.transport.request(hidden.contact(), share, timeout=10)
        assert isinstance(stored.message, ShareStored)
        assert connector.punched == 1
        assert relay.server is not None and relay.server.carried == 0


async def test_when_the_punch_fails_the_relay_carries(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hole_punch, "DIAL_WINDOW", 0.3)
    monkeypatch.setattr(hole_punch, "ANSWER_WINDOW", 0.5)
    mesh = Mesh(nursery)
    async with (
        mesh.node(relay=RelayLimits()) as relay,
        mesh.node() as hidden,
        mesh.node() as dialler,
    ):
        client = await mesh.relayed(hidden, lambda: [relay.transport.listen])
        client.punch = True
        # It believes itself seen where nobody can reach it: both tries find nothing.
        client.observed[relay.node_id] = "127.0.0.2"
        connector = _punching(dialler)
        reply = await dialler.transport.request(hidden.contact(), Ping(), timeout=10)
        assert isinstance(reply.message, Pong) and reply.remote.node_id == hidden.node_id
        assert connector.punched == 0
        assert relay.server is not None and relay.server.carried > 0
