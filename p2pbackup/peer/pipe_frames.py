"""CBOR maps over a pipe between a peer and a helper process it started.

Both ends are this program, so a frame is trusted to be well formed; it is
still bounded in size and must decode to a map with an "op", so a helper
that goes wrong fails with a clear error instead of a hang or a huge read.

A frame may carry a tail: raw bytes (a pack) that follow its map, which
names their length under "tail". The sender writes them as they are and the
reader reads them straight into one buffer of that length, handed over in
the map's place of the length. Inside the map, a pack was copied into the
encoding, then in 1 MiB pieces into a buffer, out of it as the frame, and out
of the frame by the decoder: four copies of every pack a backup sends, three
on the peer's event loop, which also carries every share to the mesh.
"""

from __future__ import annotations

import os
from typing import Any

import trio

from p2pbackup.errors import P2PBackupError
from p2pbackup.wire import local_text
from p2pbackup.wire.big_bytes import dumps_map, loads_map
from p2pbackup.wire.frames import PREFIX, frame_prefix

# A frame carries at most one pack (a few MiB) or a snapshot; anything near this is a bug.
MAX_FRAME = 256 * 1024 * 1024
RECEIVE_CHUNK = 1024 * 1024
HEAD_CHUNK = 64 * 1024
# Once begun, a frame is finished even if its sender is cancelled: cut off, it would
# garble every frame after it (a failed upload cancels the others while one of them is
# halfway through a pack, and the failure itself must still get through). The other
# end always reads on, or exits and breaks the pipe; this bounds it if it does neither.
FINISH_FRAME_SECONDS = 60.0


class BrokenPipeFrame(P2PBackupError):
    """The other end sent something that is not a frame of ours."""


class ClosedInFrame(BrokenPipeFrame):
    """The other end closed its side in the middle of a frame: it died while sending."""


class FrameChannel:
    """Length-prefixed CBOR maps in both directions, each with an optional tail of raw
    bytes; sends may come from many tasks, receives from one."""

    def __init__(self, receive: trio.abc.ReceiveStream, send: trio.abc.SendStream) -> None:
        self._receive = receive
        self._send = send
        self._inbox = bytearray()  # bytes read and not yet taken
        # A pipe's own descriptor is read straight into a tail's buffer (other streams,
        # in tests, through `receive_some`).
        fileno = getattr(receive, "fileno", None)
        self._fd: int | None = fileno() if callable(fileno) else None
        self._send_lock = trio.Lock()
        self._cut_off = False
        self._cut_short = False

    async def send(self, frame: dict[str, Any], tail: bytes | bytearray | None = None) -> None:
        """Send `frame`, then `tail` (if any) as it is: the reader finds it in the
        received map under "tail"."""
        if tail is not None:
            frame = {**frame, "tail": len(tail)}
            frame_prefix(len(tail), MAX_FRAME)  # the same bound as a frame's
        try:
            body = dumps_map(frame)
        except UnicodeEncodeError:  # a file name that is not UTF-8, in a warning or a path
            body = dumps_map(local_text.tag_raw_text(frame))
        prefix = frame_prefix(len(body), MAX_FRAME)
        async with self._send_lock:
            if self._cut_off:
                raise BrokenPipeFrame("an earlier frame on this pipe was cut off")
            deadline = trio.current_time() + FINISH_FRAME_SECONDS
            with trio.CancelScope(shield=True, deadline=deadline) as finishing:
                # Apart: joining them copied every pack once more on its way.
                await self._send.send_all(prefix)
                await self._send.send_all(body)
                if tail:
                    await self._send.send_all(tail)
            if finishing.cancelled_caught:
                self._cut_off = True
                raise BrokenPipeFrame("the other end stopped reading in the middle of a frame")

    async def receive(self) -> dict[str, Any] | None:
        """The next frame (its tail, if any, under "tail" as a bytearray), or None once
        the other end closed its side cleanly. One cancelled in the middle of a frame
        leaves the channel unusable: receives end only with the job."""
        if self._cut_short:
            raise BrokenPipeFrame("an earlier receive on this pipe was cut short")
        self._cut_short = True
        frame = await self._receive_frame()
        self._cut_short = False
        return frame

    async def _receive_frame(self) -> dict[str, Any] | None:
        if not await self._fill(PREFIX.size, at_frame_start=True):
            return None
        (length,) = PREFIX.unpack(self._pop(PREFIX.size))
        if length > MAX_FRAME:
            raise BrokenPipeFrame(f"frame length {length} exceeds the limit of {MAX_FRAME}")
        await self._fill(length)
        body = self._pop(length)
        try:
            frame = loads_map(body, tag_hook=local_text.untag_raw_text)
        except Exception as exc:
            raise BrokenPipeFrame(f"undecodable frame: {type(exc).__name__}") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
            raise BrokenPipeFrame("a frame must be a map with an op")
        if "tail" in frame:
            size = frame["tail"]
            if not isinstance(size, int) or not 0 <= size <= MAX_FRAME:
                raise BrokenPipeFrame("a frame's tail must be a length within the limit")
            frame["tail"] = await self._read_tail(size)
        return frame

    async def _fill(self, size: int, *, at_frame_start: bool = False) -> bool:
        """Read until `size` bytes are waiting; False if the pipe closed cleanly before a
        frame began."""
        while len(self._inbox) < size:
            # No more than a map needs (or a little), so little of a tail is read here
            # to be copied again into its buffer.
            want = min(RECEIVE_CHUNK, max(size - len(self._inbox), HEAD_CHUNK))
            data = await self._receive.receive_some(want)
            if not data:
                if at_frame_start and not self._inbox:
                    return False
                raise ClosedInFrame("the pipe closed in the middle of a frame")
            self._inbox += data
        return True

    def _pop(self, size: int) -> bytes:
        """The next `size` bytes waiting, in one copy."""
        with memoryview(self._inbox) as view:
            taken = bytes(view[:size])
        del self._inbox[:size]
        return taken

    async def _read_tail(self, size: int) -> bytearray:
        """`size` bytes into one new buffer: what was read ahead, then the rest."""
        tail = bytearray(size)
        with memoryview(tail) as view:
            got = min(size, len(self._inbox))
            with memoryview(self._inbox) as ahead:
                view[:got] = ahead[:got]
            del self._inbox[:got]
            while got < size:
                count = await self._read_into(view[got:])
                if not count:
                    raise ClosedInFrame("the pipe closed in the middle of a frame")
                got += count
        return tail

    async def _read_into(self, view: memoryview) -> int:
        """Read what the pipe holds, up to `view`'s length, into `view`; 0 at its end."""
        if self._fd is None:
            data = await self._receive.receive_some(min(len(view), RECEIVE_CHUNK))
            view[: len(data)] = data
            return len(data)
        while True:
            await trio.lowlevel.checkpoint()
            try:
                return os.readv(self._fd, [view])
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self._fd)

    async def close_send(self) -> None:
        async with self._send_lock:
            await self._send.aclose()
