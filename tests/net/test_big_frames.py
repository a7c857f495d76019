"""Big frames (shares) read straight into one buffer of their announced size: the
bytes arrive whole, the buffer counts whole against the byte budget while it is
filled, and a sender that stalls, quits or tampers mid-frame costs only its own
connection."""

from __future__ import annotations

import hashlib
import logging
import os
import struct

import pytest
import trio
import trio.testing

import p2pbackup.shares.messages as sh
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.errors import WireError
from p2pbackup.net.framing import DIRECT_FROM, receive_big
from p2pbackup.net.limits import ByteBudget
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.transport import Remote
from p2pbackup.wire.frames import PREFIX, FrameDecoder, encode_frame
from p2pbackup.wire.messages import Message, encode_message
from tests.net.bounds_support import (
    authenticate,
    contact_of,
    raw_streams,
    serving,
    wait_closed,
)

SHARE = os.urandom(3 * 1024 * 1024 + 5)
OPTIONS = TcpOptions(frame_timeout=5.0)


async def _socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


class CountingReads:
    """A stream's `receive_some` calls, counted."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.calls = 0
        self._receive_some = stream.receive_some
        stream.receive_some = self  # type: ignore[method-assign]

    async def __call__(self, max_bytes: int | None = None) -> bytes:
        self.calls += 1
        return await self._receive_some(max_bytes)


async def test_a_big_frame_is_read_into_its_own_buffer(nursery: trio.Nursery) -> None:
    ours, theirs = await _socket_pair()
    reads = CountingReads(ours)
    nursery.start_soon(theirs.send_all, encode_frame(SHARE, len(SHARE)))
    budget = ByteBudget(16 * 1024 * 1024)
    frame = await receive_big(ours, FrameDecoder(len(SHARE)), 5.0, 5.0, budget)
    assert frame == SHARE
    assert isinstance(frame, memoryview) and not frame.readonly
    assert reads.calls == 1  # the frame's first bytes; the rest went straight in
    assert budget.used == 0


async def test_the_buffer_counts_whole_while_it_fills(nursery: trio.Nursery) -> None:
    ours, theirs = await _socket_pair()
    budget = ByteBudget(16 * 1024 * 1024)
    decoder = FrameDecoder(len(SHARE))
    got: list[bytes | memoryview] = []

    async def receive() -> None:
        got.append(await receive_big(ours, decoder, 5.0, 5.0, budget))

    nursery.start_soon(receive)
    whole = encode_frame(SHARE, len(SHARE))
    await theirs.send_all(whole[: 100 * 1024])
    await trio.testing.wait_all_tasks_blocked()
    assert budget.used == decoder.holding == PREFIX.size + len(SHARE)
    assert decoder.buffered == 100 * 1024
    await theirs.send_all(whole[100 * 1024 :])
    await trio.testing.wait_all_tasks_blocked()
    assert got == [SHARE]
    assert budget.used == decoder.holding == 0


async def test_a_frame_cut_short_leaves_counted_only_what_arrived() -> None:
    ours, theirs = await _socket_pair()
    budget = ByteBudget(16 * 1024 * 1024)
    decoder = FrameDecoder(len(SHARE))
    await theirs.send_all(encode_frame(SHARE, len(SHARE))[: 100 * 1024])
    await theirs.send_eof()
    with pytest.raises(WireError, match="closed inside a frame"):
        await receive_big(ours, decoder, 5.0, 5.0, budget)
    # What arrived stays with the decoder, as for any frame cut short: closing the
    # connection gives it back. The rest of the reservation is given back now.
    assert budget.used == decoder.buffered == 100 * 1024


async def test_without_room_for_the_whole_frame_it_waits_within_the_budget(
    nursery: trio.Nursery,
) -> None:
    ours, theirs = await _socket_pair()
    budget = ByteBudget(4 * 1024 * 1024)
    budget.take(2 * 1024 * 1024)  # others hold half of it
    got: list[bytes | memoryview] = []

    async def receive() -> None:
        got.append(await receive_big(ours, FrameDecoder(len(SHARE)), 5.0, 5.0, budget))

    nursery.start_soon(receive)
    nursery.start_soon(theirs.send_all, encode_frame(SHARE, len(SHARE)))
    await trio.testing.wait_all_tasks_blocked()
    assert not got and budget.used <= 4 * 1024 * 1024  # waiting for room, within the budget
    budget.give(2 * 1024 * 1024)
    await trio.testing.wait_all_tasks_blocked()
    assert got == [SHARE]
    assert budget.used == 0


async def test_a_small_frame_is_not_given_a_buffer_of_its_own() -> None:
    ours, theirs = await _socket_pair()
    await theirs.send_all(encode_frame(b"x" * (DIRECT_FROM - 1)))
    frame = await receive_big(ours, FrameDecoder(), 5.0, 5.0, ByteBudget(1 << 20))
    assert frame == b"x" * (DIRECT_FROM - 1) and isinstance(frame, bytes)


async def _echo_share(remote: Remote, message: Message) -> Message:
    if isinstance(message, sh.PutShare):
        digest = hashlib.sha256(message.data).digest()
        return sh.ShareData(index=message.index, descriptor=digest, data=bytes(message.data))
    return Pong()


async def test_shares_cross_the_transport_whole_both_ways(nursery: trio.Nursery) -> None:
    async with (
        serving(nursery, OPTIONS, _echo_share) as holder,
        serving(nursery, OPTIONS) as owner,
    ):
        put = sh.PutShare(pack_id=bytes(20), index=3, descriptor=b"d", data=SHARE)
        async with trio.open_nursery() as burst:
            replies: list[Message] = []

            async def one() -> None:
                replies.append((await owner.request(contact_of(holder), put, 10)).message)

            for _ in range(4):
                burst.start_soon(one)
        expected = sh.ShareData(3, hashlib.sha256(SHARE).digest(), SHARE)
        assert replies == [expected] * 4
        assert holder.held_bytes == 0


async def _big_request(stream: trio.SocketStream, tamper: int | None) -> None:
    channel = await authenticate(stream)
    put = sh.PutShare(pack_id=bytes(20), index=0, descriptor=b"d", data=SHARE)
    frame = bytearray(encode_frame(channel.seal(encode_message(0, put)), 1 << 30))
    if tamper is not None:
        frame[tamper] ^= 0x40
    await stream.send_all(frame)


@pytest.mark.parametrize("tamper", [PREFIX.size, len(SHARE) // 2, -1])
async def test_a_tampered_share_costs_only_its_connection(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture, tamper: int
) -> None:
    caplog.set_level(logging.WARNING, logger="p2pbackup.net.tcp")
    stored: list[int] = []

    async def holder_handler(remote: Remote, message: Message) -> Message:
        stored.append(1)
        return await _echo_share(remote, message)

    async with (
        serving(nursery, OPTIONS, holder_handler) as holder,
        serving(nursery, OPTIONS) as honest,
    ):
        async with raw_streams(2, holder.listen) as (bad, good):
            closed = trio.Event()
            await _big_request(bad, tamper)
            nursery.start_soon(wait_closed, bad, closed)
            await closed.wait()
            assert not stored
            assert any("failed authentication" in r.getMessage() for r in caplog.records)
            await _big_request(good, None)  # the same request, untampered, is answered
            while not stored:
                await trio.testing.wait_all_tasks_blocked()
        reply = await honest.request(contact_of(holder), Ping(), timeout=5)
        assert isinstance(reply.message, Pong)
        assert holder.held_bytes == 0


@pytest.mark.parametrize("stop", ["quit", "stall"])
async def test_a_big_frame_cut_short_gives_its_whole_buffer_back(
    nursery: trio.Nursery, stop: str
) -> None:
    options = TcpOptions(frame_timeout=0.5)
    # Big enough to be read into a buffer of its own, small enough that a stalled one's
    # deadline (its length at the slowest honest rate) comes in 4.5 s, not 48.
    share = SHARE[: 256 * 1024]
    async with serving(nursery, options) as holder:
        async with raw_streams(1, holder.listen) as (stream,):
            await authenticate(stream)
            closed = trio.Event()
            nursery.start_soon(wait_closed, stream, closed)
            await stream.send_all(struct.pack(">I", len(share)) + share[: 128 * 1024])
            while holder.held_bytes < 128 * 1024:  # what was sent has arrived
                await trio.testing.wait_all_tasks_blocked()
            assert holder.held_bytes == PREFIX.size + len(share)  # counted whole, not as read
            if stop == "quit":
                await stream.send_eof()
            await closed.wait()  # a stalled one at its frame deadline
        while holder.connection_count:
            await trio.testing.wait_all_tasks_blocked()
        assert holder.held_bytes == 0
