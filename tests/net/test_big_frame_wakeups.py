"""A big frame's reader over TCP is woken once the rest of the frame has arrived, not
for every burst of segments; once the frame is read, the connection wakes for a
small frame's first byte again."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import trio
import trio.testing

from p2pbackup.net import framing
from p2pbackup.net.framing import receive_big
from p2pbackup.wire.frames import FrameDecoder, encode_frame

SHARE = os.urandom(3 * 1024 * 1024 + 5)


async def _connected() -> tuple[trio.SocketStream, trio.SocketStream]:
    """Both ends of a loopback TCP connection (readiness thresholds are TCP's)."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = trio.socket.socket()
    await client.connect(listener.getsockname())
    server, _ = await listener.accept()
    listener.close()
    return trio.SocketStream(server), trio.SocketStream(client)


def _kernel_cap() -> int:
    """The most Linux lets a TCP socket wait for: half the largest receive buffer."""
    return int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2]) >> 1


def _wakes_at(stream: trio.SocketStream) -> int:
    return int(stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))


async def _receive_into(
    stream: trio.SocketStream, decoder: FrameDecoder, got: list[bytes], done: trio.Event
) -> None:
    got.append(bytes(await receive_big(stream, decoder, 5.0, 5.0)))
    done.set()


async def test_a_big_frame_wakes_its_reader_once_its_rest_has_arrived(
    nursery: trio.Nursery,
) -> None:
    ours, theirs = await _connected()
    whole = encode_frame(SHARE, len(SHARE))
    got: list[bytes] = []
    done = trio.Event()
    nursery.start_soon(_receive_into, ours, FrameDecoder(len(SHARE)), got, done)
    await theirs.send_all(whole[: 64 * 1024])
    await trio.testing.wait_all_tasks_blocked()
    rest = len(whole) - 64 * 1024
    assert _wakes_at(ours) == min(rest, _kernel_cap())  # the rest, not each segment
    await theirs.send_all(whole[64 * 1024 :])
    await done.wait()
    assert got == [SHARE]


async def test_after_a_big_frame_a_small_one_wakes_its_reader(nursery: trio.Nursery) -> None:
    ours, theirs = await _connected()
    decoder = FrameDecoder(len(SHARE))
    nursery.start_soon(theirs.send_all, encode_frame(SHARE, len(SHARE)))
    assert await receive_big(ours, decoder, 5.0, 5.0) == SHARE
    assert _wakes_at(ours) == 1
    got: list[bytes] = []
    done = trio.Event()
    nursery.start_soon(_receive_into, ours, decoder, got, done)
    await trio.testing.wait_all_tasks_blocked()  # the reader waits for the next frame
    await theirs.send_all(encode_frame(b"ping", len(SHARE)))
    await done.wait()
    assert got == [b"ping"]


async def test_what_has_arrived_is_read_without_a_wait_and_the_rest_after_one(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decision 0076: the bytes of a big frame already there are read at once; the
    reader sleeps once, for the rest, and never for a frame that is there whole."""
    waits: list[int] = []
    wait_readable = framing.wait_readable

    async def counted(sock: trio.socket.SocketType) -> None:
        waits.append(_wakes_at_socket(sock))
        await wait_readable(sock)

    monkeypatch.setattr(framing, "wait_readable", counted)
    ours, theirs = await _connected()
    small = os.urandom(100 * 1024)  # a big frame, yet one the socket buffers hold whole
    with trio.fail_after(5):
        await theirs.send_all(encode_frame(small, len(SHARE)))
    await trio.testing.wait_all_tasks_blocked()
    decoder = FrameDecoder(len(SHARE))
    assert await receive_big(ours, decoder, 5.0, 5.0) == small
    assert waits == []
    whole = encode_frame(SHARE, len(SHARE))
    got: list[bytes] = []
    done = trio.Event()
    nursery.start_soon(_receive_into, ours, decoder, got, done)
    await theirs.send_all(whole[: 64 * 1024])
    await trio.testing.wait_all_tasks_blocked()
    await theirs.send_all(whole[64 * 1024 :])
    await done.wait()
    assert got == [SHARE]
    assert waits == [min(len(whole) - 64 * 1024, _kernel_cap())]


def _wakes_at_socket(sock: trio.socket.SocketType) -> int:
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT))
