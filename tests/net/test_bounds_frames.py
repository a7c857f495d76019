"""A sender trickling a frame loses its connection at the frame's deadline, and
the buffer it made this peer hold goes with it."""

from __future__ import annotations

import logging
import struct

import pytest
import trio
import trio.testing

from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.net.options import TcpOptions
from tests.net.bounds_support import (
    authenticate,
    contact_of,
    raw_streams,
    serving,
    trickle,
    wait_closed,
)

# A deadline per read would be met by each byte below; the frame needs 20 s.
OPTIONS = TcpOptions(max_frame=64 * 1024, handshake_timeout=5.0, frame_timeout=0.5)
FRAME_BYTES = 800
TRICKLE = 0.025


async def test_a_trickled_frame_is_closed_at_its_deadline_and_its_buffer_freed(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="p2pbackup.net.tcp")
    async with serving(nursery, OPTIONS) as server, serving(nursery, OPTIONS) as honest:
        async with raw_streams(1, server.listen) as (stream,):
            await authenticate(stream)
            closed = trio.Event()
            nursery.start_soon(wait_closed, stream, closed)
            await stream.send_all(struct.pack(">I", FRAME_BYTES))
            await stream.send_all(b"\0" * 10)
            await trio.testing.wait_all_tasks_blocked(cushion=0.05)
            assert server.held_bytes > 0, "the trickled bytes were never seen as held"
            # One byte short: never a whole frame, whatever the deadline.
            sent = await trickle(stream, closed, FRAME_BYTES - 11, TRICKLE)
            await closed.wait()
        assert sent < FRAME_BYTES - 11, "the connection outlived its trickle"
        assert server.held_bytes == 0
        assert any("not finished within" in r.getMessage() for r in caplog.records)
        reply = await honest.request(contact_of(server), Ping(), timeout=5)
        assert isinstance(reply.message, Pong)


async def test_a_trickled_handshake_is_closed_at_the_handshake_deadline(
    nursery: trio.Nursery,
) -> None:
    options = TcpOptions(handshake_timeout=0.5, frame_timeout=30.0)
    async with serving(nursery, options) as server:
        async with raw_streams(1, server.listen) as (stream,):
            closed = trio.Event()
            nursery.start_soon(wait_closed, stream, closed)
            await stream.send_all(struct.pack(">I", 1000))
            sent = await trickle(stream, closed, 999, TRICKLE)
            await closed.wait()
        assert sent < 999, "the handshake outlived its trickle"
        assert server.unauthenticated_count == 0
        assert server.held_bytes == 0
