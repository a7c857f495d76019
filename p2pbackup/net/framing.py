"""Reading one frame off a stream, under deadlines a slow sender cannot stretch.

A frame's deadline runs from its first byte to its last, not per read: a
sender trickling a byte at a time would otherwise hold a frame's buffer for
as long as it liked. A long frame also gets the time its length takes at the
slowest rate an honest uplink sends at (`SLOWEST_RATE`). A silent connection
with nothing begun is idle instead, and ends after the longer idle deadline.

A big frame (a share, a pack) is read straight into one buffer of its
announced size, with reads as large as what remains of it: growing a buffer
and copying the frame out of it cost more than the cipher did. Over TCP its
reader sleeps until the rest of the frame has arrived (`SO_RCVLOWAT`), not
waking for every burst of segments.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import termios

import trio
from trio.lowlevel import wait_readable

from p2pbackup.crypto.in_place import new_buffer
from p2pbackup.errors import WireError
from p2pbackup.net.limits import ByteBudget
from p2pbackup.wire.frames import GATHER_FROM, PREFIX, FrameDecoder

RECEIVE_CHUNK = 256 * 1024
# A frame's deadline is `frame_timeout` plus its announced length at this rate: a
# 2 MiB share over a home uplink of 1 Mbit/s takes 17 s, a 6 MiB one 50 s, and a
# trickler holding a buffer must still send 512 kbit/s for it (decision 0097).
SLOWEST_RATE = 64 * 1024
# Read at least this much at a time even with the budget spent, so every
# connection can still finish a small frame.
LEAST_CHUNK = 16 * 1024
# A frame announced at least this long gets a buffer of its own (see `receive_big`).
DIRECT_FROM = GATHER_FROM
# A big frame's reader is woken once all that is left of it has arrived (up to this
# much, and what the kernel allows), not for every burst of segments: each wake-up
# costs the event loop far more than the bytes it brings (decision 0068).
WAKE_AT = 8 * 1024 * 1024


class Closed(Exception):
    """The far end closed the connection cleanly, or stayed idle too long."""


async def receive_frame(
    stream: trio.abc.ReceiveStream,
    decoder: FrameDecoder,
    frame_timeout: float,
    idle_timeout: float,
    budget: ByteBudget | None = None,
    most: int = RECEIVE_CHUNK,
) -> bytes:
    """The next frame; raises `Closed` on a clean end, `WireError` on a bad or stalled one.

    With a `budget`, bytes buffered count against it; a frame begun while it is
    spent waits (within its deadline) for room before reading on. No read takes
    more than `most` bytes, so a handshake leaves little of what follows buffered."""
    frame = await _receive(stream, decoder, frame_timeout, idle_timeout, budget, most, False)
    return frame if isinstance(frame, bytes) else bytes(frame)


async def receive_big(
    stream: trio.abc.ReceiveStream,
    decoder: FrameDecoder,
    frame_timeout: float,
    idle_timeout: float,
    budget: ByteBudget | None = None,
) -> bytes | memoryview:
    """As `receive_frame`, but a big frame comes as a writable view of a buffer of
    its own, read into directly. Its whole size is counted against `budget` when
    the buffer is made; with less room than that it is read as any other frame."""
    return await _receive(stream, decoder, frame_timeout, idle_timeout, budget, RECEIVE_CHUNK, True)


async def _receive(
    stream: trio.abc.ReceiveStream,
    decoder: FrameDecoder,
    frame_timeout: float,
    idle_timeout: float,
    budget: ByteBudget | None,
    most: int,
    direct: bool,
) -> bytes | memoryview:
    deadline: float | None = None
    allowed = frame_timeout
    length: int | None = None
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            if budget is not None:
                budget.give(PREFIX.size + len(frame))
            return frame
        if deadline is None and decoder.buffered:
            deadline = trio.current_time() + frame_timeout
        if deadline is not None and length is None:
            length = decoder.announced()
            if length is not None:
                allowed += length / SLOWEST_RATE
                deadline += length / SLOWEST_RATE
        if (
            direct
            and length is not None
            and deadline is not None
            and length >= DIRECT_FROM
            and _room_for(budget, decoder, length)
        ):
            return await _read_direct(stream, decoder, length, deadline, allowed, budget)
        with trio.move_on_at(
            deadline if deadline is not None else trio.current_time() + idle_timeout
        ):
            data = await _read(stream, decoder, budget, most)
            if not data:
                if decoder.buffered:
                    raise WireError(f"connection closed inside a frame ({decoder.buffered} bytes)")
                raise Closed
            decoder.feed(data)
            continue
        if decoder.buffered:
            raise WireError(
                f"truncated frame: {decoder.buffered} bytes, not finished within {allowed:.3g}s"
            )
        raise Closed  # idle


def _room_for(budget: ByteBudget | None, decoder: FrameDecoder, length: int) -> bool:
    """Whether the rest of a frame of `length` fits the budget now (what arrived is counted)."""
    return budget is None or budget.room >= PREFIX.size + length - decoder.buffered


async def _read_direct(
    stream: trio.abc.ReceiveStream,
    decoder: FrameDecoder,
    length: int,
    deadline: float,
    allowed: float,
    budget: ByteBudget | None,
) -> bytes | memoryview:
    """The rest of a big frame, read into a buffer of its own that counts whole against
    `budget` until the frame is read; if the read fails, only what arrived stays counted
    (held by the decoder, as with any frame cut short)."""
    size = PREFIX.size + length
    decoder.gather(new_buffer(length))
    if budget is not None:
        budget.take(size - decoder.buffered)
    sock = stream.socket if isinstance(stream, trio.SocketStream) else None
    try:
        with trio.move_on_at(deadline):
            while (frame := decoder.next_frame()) is None:
                unfilled = decoder.unfilled()
                if sock is not None:
                    count = await _read_socket(sock, unfilled)
                else:
                    count = await _read_stream(stream, unfilled)
                if not count:
                    raise WireError(f"connection closed inside a frame ({decoder.buffered} bytes)")
                decoder.filled(count)
            if budget is not None:
                budget.give(size)
            return frame
        raise WireError(
            f"truncated frame: {decoder.buffered} bytes, not finished within {allowed:.3g}s"
        )
    except BaseException:
        if budget is not None:
            budget.give(size - decoder.buffered)
        raise
    finally:
        if sock is not None:  # the next frame may be small: wake for its first byte
            _wake_at(sock, 1)


def unread(stream: trio.abc.ReceiveStream) -> int:
    """Bytes arrived on a plain socket that no read has taken yet (`FIONREAD`). A big
    frame's reader sleeps until all of it is in, so what came meanwhile shows only here."""
    if not isinstance(stream, trio.SocketStream):
        return 0
    try:
        raw = fcntl.ioctl(stream.socket.fileno(), termios.FIONREAD, bytes(4))
    except (OSError, ValueError):  # closed under us (a fileno of -1 is a ValueError)
        return 0
    count: int = struct.unpack("i", raw)[0]
    return count


def _wake_at(sock: trio.socket.SocketType, count: int) -> None:
    """Have readiness wait for `count` bytes (`SO_RCVLOWAT`); a read that does not
    wait still returns what there is, so the frame's deadline holds as before."""
    with contextlib.suppress(OSError):  # closed under us: the read says so
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, count)


async def _read_socket(sock: trio.socket.SocketType, into: memoryview) -> int:
    """One read into `into` off a plain socket: what has arrived already, read at once,
    else (nothing there) a sleep until all `into` wants has arrived, then that. The
    socket's own `recv_into` went round the event loop after every read that found
    bytes (a checkpoint), and a big frame's reader read once more, found the socket
    drained and set its wake-up mark again before it slept (decision 0076)."""
    while True:
        try:
            return os.readv(sock.fileno(), [into])
        except BlockingIOError:
            _wake_at(sock, min(len(into), WAKE_AT))
            await wait_readable(sock)


async def _read_stream(stream: trio.abc.ReceiveStream, into: memoryview) -> int:
    """One read into `into` off a relayed stream: a `receive_some` copied over."""
    data = await stream.receive_some(min(len(into), RECEIVE_CHUNK))
    into[: len(data)] = data
    return len(data)


async def _read(
    stream: trio.abc.ReceiveStream, decoder: FrameDecoder, budget: ByteBudget | None, most: int
) -> bytes | bytearray:
    """One read, counted against `budget`: a frame's first bytes are a small read
    any connection may make; the rest are reserved first, so reads racing one
    another cannot together pass the budget."""
    if budget is None:
        return await stream.receive_some(most)
    if not decoder.buffered:
        first = await stream.receive_some(min(most, LEAST_CHUNK))
        budget.take(len(first))
        return first
    while budget.room <= 0:
        await budget.freed()
    reserved = min(most, budget.room)
    budget.take(reserved)
    data: bytes | bytearray = b""
    try:
        data = await stream.receive_some(reserved)
    finally:
        budget.give(reserved - len(data))
    return data
