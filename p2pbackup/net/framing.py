"""Reading one frame off a stream, under deadlines a slow sender cannot stretch.

A frame's deadline runs from its first byte to its last, not per read: a
sender trickling a byte at a time would otherwise hold a frame's buffer for
as long as it liked. A silent connection with nothing begun is idle instead,
and ends after the longer idle deadline.
"""

from __future__ import annotations

import trio

from p2pbackup.errors import WireError
from p2pbackup.net.limits import ByteBudget
from p2pbackup.wire.frames import PREFIX, FrameDecoder

RECEIVE_CHUNK = 256 * 1024
# Read at least this much at a time even with the budget spent, so every
# connection can still finish a small frame.
LEAST_CHUNK = 16 * 1024


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
    deadline: float | None = None
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            if budget is not None:
                budget.give(PREFIX.size + len(frame))
            return frame
        if deadline is None and decoder.buffered:
            deadline = trio.current_time() + frame_timeout
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
                f"truncated frame: {decoder.buffered} bytes, not finished within {frame_timeout:g}s"
            )
        raise Closed  # idle


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
