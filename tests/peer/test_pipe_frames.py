"""Frames between a peer and its engine process: survive a cancelled sender, keep their
shape, and a malformed one is refused by name."""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing

from p2pbackup.codec.packstore import PackReceipt
from p2pbackup.errors import WireError
from p2pbackup.peer import pipe_frames
from p2pbackup.peer.contracts import ContractError
from p2pbackup.peer.engine_frames import (
    Outcome,
    PackData,
    Placed,
    Put,
    Start,
    decode_from_engine,
    decode_from_peer,
)
from p2pbackup.peer.pipe_frames import BrokenPipeFrame, FrameChannel


def pipe_pair() -> tuple[FrameChannel, FrameChannel]:
    """A writer and a reader over a real pipe, whose buffer is far smaller than a pack."""
    read_fd, write_fd = os.pipe()
    unused_read, unused_write = os.pipe()
    writer = FrameChannel(trio.lowlevel.FdStream(unused_read), trio.lowlevel.FdStream(write_fd))
    reader = FrameChannel(trio.lowlevel.FdStream(read_fd), trio.lowlevel.FdStream(unused_write))
    return writer, reader


@pytest.mark.parametrize("as_tail", [False, True])
async def test_a_frame_cancelled_halfway_is_still_sent_whole(as_tail: bool) -> None:
    """A failed upload cancels another mid-pack; the error after it must still arrive."""
    writer, reader = pipe_pair()
    data = os.urandom(4 * 1024 * 1024)
    pack = {"op": "put", "tail": data} if as_tail else {"op": "put", "data": data}
    received: list[dict[str, object] | None] = []
    async with trio.open_nursery() as nursery:
        uploading = trio.CancelScope()

        async def upload_then_fail() -> None:
            with uploading:
                if as_tail:
                    await writer.send({"op": "put"}, data)
                else:
                    await writer.send(pack)
            await writer.send({"op": "error", "message": "only 2 of the 7 peers"})
            await writer.close_send()

        nursery.start_soon(upload_then_fail)
        await trio.testing.wait_all_tasks_blocked()  # the pipe is full, the pack half sent
        uploading.cancel()
        for _ in range(3):
            received.append(await reader.receive())
    assert received == [pack, {"op": "error", "message": "only 2 of the 7 peers"}, None]


async def test_a_pack_crosses_as_a_tail_read_straight_into_one_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tail arrives whole, in a buffer of its own, between frames sent before and
    after it; the pipe is read into that buffer, not through 1 MiB reads and copies."""
    writer, reader = pipe_pair()
    pack = os.urandom(3 * 1024 * 1024 + 17)
    reads: list[int] = []
    readv = os.readv

    def counted(fd: int, buffers: list[memoryview]) -> int:
        got = readv(fd, buffers)
        reads.append(got)
        return got

    monkeypatch.setattr(pipe_frames.os, "readv", counted)
    received: list[dict[str, object] | None] = []
    async with trio.open_nursery() as nursery:

        async def send_all() -> None:
            await writer.send({"op": "progress", "stats": {}})
            await writer.send({"op": "put", "pack_id": b"p", "id": 1}, pack)
            await writer.send({"op": "put", "pack_id": b"q", "id": 2}, b"")
            await writer.send({"op": "error", "message": "after the packs"})
            await writer.close_send()

        nursery.start_soon(send_all)
        while (frame := await reader.receive()) is not None:
            received.append(frame)
    assert received[0] == {"op": "progress", "stats": {}}
    assert received[1] == {"op": "put", "pack_id": b"p", "id": 1, "tail": pack}
    assert isinstance(received[1]["tail"], bytearray)
    assert received[2] == {"op": "put", "pack_id": b"q", "id": 2, "tail": b""}
    assert received[3] == {"op": "error", "message": "after the packs"}
    assert sum(reads) >= len(pack) - pipe_frames.HEAD_CHUNK


async def test_names_that_are_not_utf8_cross_beside_a_tail() -> None:
    """A warning naming a legacy-encoded file, or a path to back up, crosses as it is:
    it failed the whole backup with a UnicodeEncodeError."""
    writer, reader = pipe_pair()
    name = os.fsdecode(b"/data/r\xe9sum\xe9.txt")
    frame = {"op": "done", "errors": [[name, "permission denied"]], "paths": [name]}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.send, frame, b"\x00" * 100_000)
        received = await reader.receive()
    assert received is not None
    assert received["errors"] == [[name, "permission denied"]] and received["paths"] == [name]
    assert bytes(received["tail"]) == b"\x00" * 100_000


async def test_a_tail_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipe_frames, "MAX_FRAME", 1024)
    writer, reader = pipe_pair()
    with pytest.raises(WireError):
        await writer.send({"op": "put"}, bytes(2048))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer.send, {"op": "put", "tail": 4096})
        with pytest.raises(BrokenPipeFrame, match="tail must be a length within the limit"):
            await reader.receive()


async def test_a_reader_that_stops_reading_breaks_the_channel(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    monkeypatch.setattr(pipe_frames, "FINISH_FRAME_SECONDS", 5.0)
    writer, _reader = pipe_pair()
    with pytest.raises(BrokenPipeFrame, match="stopped reading"):
        await writer.send({"op": "put", "data": bytes(1024 * 1024)})
    with pytest.raises(BrokenPipeFrame, match="cut off"):
        await writer.send({"op": "error", "message": "too late"})


def test_typed_frames_are_the_maps_both_ends_always_sent() -> None:
    receipt = PackReceipt(bytes(32), 3, 10, 10, 40)
    placed = {"op": "placed", "receipt": [bytes(32), 3, 10, 10, 40], "id": 7}
    assert Placed(7, receipt).encode() == placed and list(Placed(7, receipt).encode()) == [
        "op",
        "receipt",
        "id",
    ]
    assert decode_from_peer(placed) == Placed(7, receipt)
    assert list(Put(1, b"p", b"d").encode()) == ["op", "pack_id", "id"]
    assert decode_from_engine({**Put(1, b"p", b"d").encode(), "tail": b"d"}) == Put(1, b"p", b"d")
    # A fetched pack goes back as a tail too, and stays the buffer it was read into.
    assert list(PackData(3, b"pack").encode()) == ["op", "id"]
    fetched = decode_from_peer({**PackData(3, b"pack").encode(), "tail": bytearray(b"pack")})
    assert isinstance(fetched, PackData) and isinstance(fetched.data, bytearray)
    assert fetched == PackData(3, b"pack")
    done = Outcome(stats={"files": 1}, process={"cpu_seconds": 0.1})
    assert list(done.encode()) == ["op", "stats", "process"]
    failed = Outcome(error="only 2 of the 7 peers", stats={}, process={})
    assert list(failed.encode()) == ["op", "message", "stats", "process"]
    back = decode_from_engine(failed.encode())
    assert isinstance(back, Outcome) and back.error == "only 2 of the 7 peers"


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        ({"op": "put", "pack_id": b"p", "id": 1}, "lacks a valid `tail`"),
        ({"op": "progress"}, "lacks a valid `stats`"),
        ({"op": "launch"}, "unexpected frame from the engine process: launch"),
    ],
)
def test_a_frame_missing_a_field_is_refused_by_name(frame: dict[str, object], error: str) -> None:
    with pytest.raises(ContractError, match=error):
        decode_from_engine(frame)
    with pytest.raises(ContractError, match="lacks a valid `tail`"):
        decode_from_peer({"op": "pack", "id": 1})
    with pytest.raises(ContractError, match="cannot run 'nothing'"):
        Start.decode({"op": "start", "job": "nothing", "master": bytes(32)})
