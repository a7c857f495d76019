"""Relays on 127.0.0.1: a peer nobody can dial is reached through one, and the relay
carries only what the two ends encrypted between themselves."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest
import trio

from benchmarks import relay as relay_benchmark
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.errors import PeerUnreachable
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.relay_book import RelayLimits
from p2pbackup.shares.messages import GetShare, PutShare, ShareData, ShareStored
from tests.net.relay_support import OPTIONS, UNREACHABLE_HOST, Mesh, wait_for

SECRET = b"a plaintext the relay must never see " * 1000


async def test_a_peer_nobody_can_dial_is_reached_through_its_relay(nursery: trio.Nursery) -> None:
    mesh = Mesh(nursery)
    async with (
        mesh.node(relay=RelayLimits()) as relay,
        mesh.node() as hidden,
        mesh.node() as dialler,
    ):
        await mesh.relayed(hidden, lambda: [relay.transport.listen])
        contact = hidden.contact()
        assert contact.address == (UNREACHABLE_HOST, hidden.transport.bound[1])
        assert contact.routes == (Route(*relay.transport.listen, relay.node_id),)

        reply = await dialler.transport.request(contact, Ping(), timeout=10)
        assert isinstance(reply.message, Pong)
        assert reply.remote.node_id == hidden.node_id  # proven end to end, not by the relay

        share = await dialler.transport.request(contact, GetShare(bytes(20), bytes(32)), timeout=10)
        assert isinstance(share.message, ShareData)
        assert share.message.data == bytes(range(256)) * 4096
        assert relay.server is not None and relay.server.carried > 1024 * 1024


async def test_without_a_relay_route_the_hidden_peer_is_unreachable(nursery: trio.Nursery) -> None:
    mesh = Mesh(nursery)
    async with (
        mesh.node(relay=RelayLimits()) as relay,
        mesh.node() as hidden,
        mesh.node() as dialler,
    ):
        await mesh.relayed(hidden, lambda: [relay.transport.listen])
        bare = Contact(hidden.node_id, *hidden.contact().address)
        with pytest.raises(PeerUnreachable):
            await dialler.transport.request(bare, Ping(), timeout=5)


async def test_the_relay_sees_only_ciphertext(nursery: trio.Nursery) -> None:
    seen: list[bytes] = []

    def tap(chunk: bytes, from_first: bool) -> bytes:
        seen.append(chunk)
        return chunk

    mesh = Mesh(nursery)
    async with (
        mesh.node(relay=RelayLimits(), tap=tap) as relay,
        mesh.node() as hidden,
        mesh.node() as dialler,
    ):
        await mesh.relayed(hidden, lambda: [relay.transport.listen])
        message = PutShare(bytes(20), 0, b"descriptor", SECRET)
        reply = await dialler.transport.request(hidden.contact(), message, timeout=10)
        assert isinstance(reply.message, ShareStored)
    carried = b"".join(seen)
    assert len(carried) > len(SECRET)  # the share did pass through the relay...
    assert SECRET[:64] not in carried  # ...and not one run of it in the clear
    assert b"descriptor" not in carried


async def test_a_relay_that_corrupts_bytes_fails_cleanly_and_another_relay_carries(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    def corrupt(chunk: bytes, from_first: bool) -> bytes:
        if len(chunk) > 1000:  # leave the handshake be; spoil what follows it
            return chunk[:500] + bytes([chunk[500] ^ 1]) + chunk[501:]
        return chunk

    mesh = Mesh(nursery)
    async with (
        mesh.node(relay=RelayLimits(), tap=corrupt) as bad,
        mesh.node(relay=RelayLimits()) as good,
        mesh.node() as hidden,
        mesh.node() as dialler,
    ):
        await mesh.relayed(hidden, lambda: [bad.transport.listen, good.transport.listen], want=2)
        routes = hidden.contact().routes
        bad_first = Contact(
            hidden.node_id,
            *hidden.contact().address,
            tuple(sorted(routes, key=lambda r: r.relay != bad.node_id)),
        )
        message = PutShare(bytes(20), 0, b"descriptor", SECRET)
        with (
            caplog.at_level(logging.WARNING, logger="p2pbackup.net.tcp"),
            pytest.raises(PeerUnreachable),
        ):
            await dialler.transport.request(bad_first, message, timeout=10)
        assert "failed authentication" in caplog.text
        # The retry goes through the other relay once the bad one's route is left out.
        good_only = Contact(
            hidden.node_id,
            *hidden.contact().address,
            tuple(r for r in routes if r.relay == good.node_id),
        )
        reply = await dialler.transport.request(good_only, message, timeout=10)
        assert isinstance(reply.message, ShareStored)


async def test_a_relay_that_drops_bytes_fails_cleanly(nursery: trio.Nursery) -> None:
    def drop(chunk: bytes, from_first: bool) -> bytes | None:
        return None if len(chunk) > 1000 else chunk

    mesh = Mesh(nursery)
    async with (
        mesh.node(relay=RelayLimits(idle_timeout=1.0), tap=drop) as relay,
        mesh.node() as hidden,
        mesh.node() as dialler,
    ):
        await mesh.relayed(hidden, lambda: [relay.transport.listen])
        message = PutShare(bytes(20), 0, b"descriptor", SECRET)
        with pytest.raises(PeerUnreachable):
            await dialler.transport.request(hidden.contact(), message, timeout=3)


async def test_a_relay_that_vanishes_mid_transfer_is_replaced_and_the_retry_gets_through(
    nursery: trio.Nursery,
) -> None:
    mesh = Mesh(nursery)
    big = PutShare(bytes(20), 0, b"descriptor", bytes(4 * 1024 * 1024))
    slow = RelayLimits(rate=4 * 1024 * 1024)  # about a second for the share: time to vanish
    async with (
        mesh.node(relay=RelayLimits(rate=64 * 1024 * 1024)) as second,
        mesh.node() as hidden,
        mesh.node() as dialler,
    ):
        failures: list[BaseException] = []
        async with mesh.node(relay=slow) as first:
            client = await mesh.relayed(
                hidden,
                lambda: [first.transport.listen, second.transport.listen],
                check_interval=0.2,
            )
            assert set(client.live) == {first.node_id}

            async def send() -> None:
                try:
                    await dialler.transport.request(hidden.contact(), big, timeout=10)
                except PeerUnreachable as exc:
                    failures.append(exc)

            nursery.start_soon(send)
            assert first.server is not None
            server = first.server
            await wait_for(lambda: server.carried > 512 * 1024)
        # The first relay is gone with the share half through it.
        await wait_for(lambda: bool(failures))
        await wait_for(lambda: set(client.live) == {second.node_id})
        reply = await dialler.transport.request(hidden.contact(), big, timeout=10)
        assert isinstance(reply.message, ShareStored)


async def test_the_relay_benchmark_measures_both_paths() -> None:
    figures = await relay_benchmark._measure(2, "127.0.0.1")
    assert figures.payload_bytes == 2 * relay_benchmark.SHARE
    assert figures.direct_seconds > 0 and figures.relayed_seconds > 0


async def test_many_peers_behind_one_relay_are_each_dialled_within_the_dial_limits(
    nursery: trio.Nursery,
) -> None:
    """The dial limit counts dials to each peer, not to the relay all of them share."""
    mesh = Mesh(nursery)
    strict = replace(OPTIONS, dials_per_minute=6.0, dial_burst=6.0)
    async with AsyncExitStack() as stack:
        relay = await stack.enter_async_context(mesh.node(relay=RelayLimits()))
        dialler = await stack.enter_async_context(mesh.node(options=strict))
        hidden = [await stack.enter_async_context(mesh.node()) for _ in range(8)]
        for node in hidden:
            await mesh.relayed(node, lambda: [relay.transport.listen])
        for node in hidden:
            reply = await dialler.transport.request(node.contact(), Ping(), timeout=10)
            assert reply.remote.node_id == node.node_id
