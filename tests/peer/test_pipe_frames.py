"""Frames between a peer and its engine process survive a cancelled sender."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from p2pbackup.peer import pipe_frames
from p2pbackup.peer.pipe_frames import BrokenPipeFrame, FrameChannel


def pipe_pair() -> tuple[FrameChannel, FrameChannel]:
    """A writer and a reader over a real pipe, whose buffer is far smaller than a pack."""
    read_fd, write_fd = os.pipe()
    unused_read, unused_write = os.pipe()
    writer = FrameChannel(trio.lowlevel.FdStream(unused_read), trio.lowlevel.FdStream(write_fd))
    reader = FrameChannel(trio.lowlevel.FdStream(read_fd), trio.lowlevel.FdStream(unused_write))
    return writer, reader


async def test_a_frame_cancelled_halfway_is_still_sent_whole() -> None:
    """A failed upload cancels another mid-pack; the error after it must still arrive."""
    writer, reader = pipe_pair()
    pack = {"op": "put", "data": os.urandom(4 * 1024 * 1024)}
    received: list[dict[str, object] | None] = []
    async with trio.open_nursery() as nursery:
        uploading = trio.CancelScope()

        async def upload_then_fail() -> None:
            with uploading:
                await writer.send(pack)
            await writer.send({"op": "error", "message": "only 2 of the 7 peers"})
            await writer.close_send()

        nursery.start_soon(upload_then_fail)
        await trio.testing.wait_all_tasks_blocked()  # the pipe is full, the pack half sent
        uploading.cancel()
        for _ in range(3):
            received.append(await reader.receive())
    assert received == [pack, {"op": "error", "message": "only 2 of the 7 peers"}, None]


async def test_a_reader_that_stops_reading_breaks_the_channel(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    monkeypatch.setattr(pipe_frames, "FINISH_FRAME_SECONDS", 5.0)
    writer, _reader = pipe_pair()
    with pytest.raises(BrokenPipeFrame, match="stopped reading"):
        await writer.send({"op": "put", "data": bytes(1024 * 1024)})
    with pytest.raises(BrokenPipeFrame, match="cut off"):
        await writer.send({"op": "error", "message": "too late"})
