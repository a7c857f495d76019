"""Many connections each sending most of a big frame: together they hold no more
than the shared byte budget (plus one small read each), an honest peer is still
answered, and each is closed at its frame deadline with its bytes given back."""

from __future__ import annotations

import contextlib
import struct

import trio
import trio.testing

from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.net.framing import LEAST_CHUNK
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.tcp import HANDSHAKE_READ
from tests.net.bounds_support import authenticate, contact_of, raw_streams, serving, wait_closed

BUDGET = 1024 * 1024
ATTACKERS = 8
FRAME = 500 * 1024
SENT = 400 * 1024  # of each frame: the rest never comes
OPTIONS = TcpOptions(max_frame=512 * 1024, memory_budget=BUDGET, frame_timeout=3.0)
# The budget, passed by at most one least read per connection (the honest one's
# too), and by what a handshake's last read took of the bytes after it.
BOUND = BUDGET + (ATTACKERS + 1) * (LEAST_CHUNK + HANDSHAKE_READ)


async def test_big_frames_from_many_connections_stay_within_the_shared_budget(
    nursery: trio.Nursery,
) -> None:
    async with serving(nursery, OPTIONS) as server, serving(nursery, OPTIONS) as honest:
        await honest.request(contact_of(server), Ping(), timeout=5)
        async with raw_streams(ATTACKERS, server.listen) as streams:
            closed = [trio.Event() for _ in streams]
            for stream, event in zip(streams, closed, strict=True):
                await authenticate(stream)
                nursery.start_soon(wait_closed, stream, event)
                data = struct.pack(">I", FRAME) + bytes(SENT)
                nursery.start_soon(_send_until_closed, stream, data)
            await trio.testing.wait_all_tasks_blocked(cushion=0.3)
            held = server.held_bytes
            assert held <= BOUND, held
            assert held > BUDGET // 2, held  # the attack did fill it
            reply = await honest.request(contact_of(server), Ping(), timeout=5)
            assert isinstance(reply.message, Pong)
            for event in closed:
                await event.wait()
        assert server.held_bytes == 0
        assert server.connection_count == 1


async def _send_until_closed(stream: trio.SocketStream, data: bytes) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(data)
