"""A long frame gets the time its length takes at the slowest honest rate on top of
the frame deadline: a share over a slow uplink arrives, a trickle is still cut."""

from __future__ import annotations

import os

import pytest
import trio

from p2pbackup.errors import WireError
from p2pbackup.net.framing import SLOWEST_RATE, receive_big, receive_frame
from p2pbackup.wire.frames import FrameDecoder, encode_frame

FRAME_TIMEOUT = 0.2
BODY = os.urandom(SLOWEST_RATE * 2)  # 2 s at the slowest rate: 2.2 s allowed in all


async def _socket_pair() -> tuple[trio.SocketStream, trio.SocketStream]:
    a, b = trio.socket.socketpair()
    return trio.SocketStream(a), trio.SocketStream(b)


async def _send_over(stream: trio.SocketStream, frame: bytes, seconds: float) -> None:
    """Send `frame` in 16 even pieces spread over `seconds`."""
    pieces = 16
    step = -(-len(frame) // pieces)
    for start in range(0, len(frame), step):
        try:
            await stream.send_all(frame[start : start + step])
        except trio.BrokenResourceError:
            return
        await trio.sleep(seconds / pieces)


@pytest.mark.parametrize("big", [False, True], ids=["buffered", "direct"])
async def test_a_frame_at_an_uplinks_pace_arrives_past_the_plain_deadline(big: bool) -> None:
    ours, theirs = await _socket_pair()
    async with trio.open_nursery() as nursery:
        # Five times the plain deadline, well within the one its length adds.
        nursery.start_soon(_send_over, theirs, encode_frame(BODY), 5 * FRAME_TIMEOUT)
        decoder = FrameDecoder(len(BODY))
        receive = receive_big if big else receive_frame
        frame = await receive(ours, decoder, FRAME_TIMEOUT, 60.0)
    assert bytes(frame) == BODY


@pytest.mark.parametrize("big", [False, True], ids=["buffered", "direct"])
async def test_a_frame_slower_than_the_slowest_rate_is_cut(big: bool) -> None:
    ours, theirs = await _socket_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_send_over, theirs, encode_frame(BODY), 6.0)  # a third of it
        decoder = FrameDecoder(len(BODY))
        receive = receive_big if big else receive_frame
        started = trio.current_time()
        with pytest.raises(WireError, match=r"not finished within 2\.2s"):
            await receive(ours, decoder, FRAME_TIMEOUT, 60.0)
        assert trio.current_time() - started < 4.0
        await ours.aclose()
        nursery.cancel_scope.cancel()
