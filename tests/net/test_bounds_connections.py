"""Idle strangers and connection floods are turned away at caps kept below the
descriptor limit, while a peer already connected is still answered."""

from __future__ import annotations

import errno
import logging
import resource

import pytest
import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.net.limits import FD_HEADROOM, connection_caps
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.tcp import TcpTransport
from tests.net.bounds_support import authenticate, contact_of, raw_streams, serving, wait_closed

CAP = 4
FLOOD = 20
OPTIONS = TcpOptions(handshake_timeout=60.0, max_unauthenticated=CAP, max_connections=CAP + 4)


async def _count_closed(
    streams: list[trio.SocketStream], nursery: trio.Nursery
) -> list[trio.Event]:
    events = [trio.Event() for _ in streams]
    for stream, event in zip(streams, events, strict=True):
        nursery.start_soon(wait_closed, stream, event)
    return events


async def test_idle_strangers_past_the_cap_are_closed_and_a_peer_is_still_served(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="p2pbackup.net.tcp")
    async with serving(nursery, OPTIONS) as server, serving(nursery, OPTIONS) as honest:
        await honest.request(contact_of(server), Ping(), timeout=5)  # connected before
        async with raw_streams(FLOOD, server.listen) as streams:
            events = await _count_closed(streams, nursery)
            # Each stream past the cap is closed at once; the first CAP wait for
            # their handshake deadline, a minute away.
            with trio.fail_after(60):  # a hang on failure, never a pass on time
                for event in events[CAP:]:
                    await event.wait()
            assert not any(event.is_set() for event in events[:CAP])
            assert server.unauthenticated_count == CAP
            reply = await honest.request(contact_of(server), Ping(), timeout=5)
            assert isinstance(reply.message, Pong)
        turned = [r for r in caplog.records if "turning away" in r.getMessage()]
        assert len(turned) == 1, "a flood must cost one log line, not one per connection"


async def test_connections_past_the_total_cap_are_closed(nursery: trio.Nursery) -> None:
    options = TcpOptions(handshake_timeout=60.0, max_unauthenticated=8, max_connections=3)
    async with serving(nursery, options) as server, raw_streams(3, server.listen) as admitted:
        for stream in admitted:
            await authenticate(stream)
        async with raw_streams(2, server.listen) as extra:
            events = await _count_closed(extra, nursery)
            for event in events:
                await event.wait()
        assert server.connection_count == 3


def test_the_default_caps_leave_descriptors_for_files_and_dials() -> None:
    for limit in (256, 1024, 65536):
        total, strangers = connection_caps(limit)
        assert total + FD_HEADROOM < limit
        assert strangers < total
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    transport = TcpTransport(Identity.generate(), ("127.0.0.1", 0))
    if soft != resource.RLIM_INFINITY:
        assert transport.admission.max_connections < soft - FD_HEADROOM


async def test_accept_failing_for_want_of_descriptors_does_not_stop_the_transport(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="p2pbackup.net.tcp")
    failures = [errno.EMFILE, errno.ENFILE, errno.ENOBUFS]
    real_accept = trio.SocketListener.accept

    async def accept(self: trio.SocketListener) -> trio.SocketStream:
        if failures:
            code = failures.pop(0)
            await trio.lowlevel.checkpoint()
            raise OSError(code, "simulated")
        return await real_accept(self)

    monkeypatch.setattr(trio.SocketListener, "accept", accept)
    options = TcpOptions(accept_pause=0.01)
    async with serving(nursery, options) as server, serving(nursery, options) as client:
        reply = await client.request(contact_of(server), Ping(), timeout=10)
        assert isinstance(reply.message, Pong)
    assert not failures
    assert any("cannot accept connections" in r.getMessage() for r in caplog.records)
