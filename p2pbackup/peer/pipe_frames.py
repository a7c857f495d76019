"""CBOR maps over a pipe between a peer and a helper process it started.

Both ends are this program, so a frame is trusted to be well formed; it is
still bounded in size and must decode to a map with an "op", so a helper
that goes wrong fails with a clear error instead of a hang or a huge read.
"""

from __future__ import annotations

from typing import Any

import trio

from p2pbackup.errors import P2PBackupError, WireError
from p2pbackup.wire.big_bytes import dumps_map, loads_map
from p2pbackup.wire.frames import GATHER_FROM, FrameDecoder, frame_prefix

# A frame carries at most one pack (a few MiB) or a snapshot; anything near this is a bug.
MAX_FRAME = 256 * 1024 * 1024
RECEIVE_CHUNK = 1024 * 1024
# Once begun, a frame is finished even if its sender is cancelled: cut off, it would
# garble every frame after it (a failed upload cancels the others while one of them is
# halfway through a pack, and the failure itself must still get through). The other
# end always reads on, or exits and breaks the pipe; this bounds it if it does neither.
FINISH_FRAME_SECONDS = 60.0


class BrokenPipeFrame(P2PBackupError):
    """The other end sent something that is not a frame of ours."""


class FrameChannel:
    """Length-prefixed CBOR maps in both directions; sends may come from many tasks."""

    def __init__(self, receive: trio.abc.ReceiveStream, send: trio.abc.SendStream) -> None:
        self._receive = receive
        self._send = send
        self._decoder = FrameDecoder(MAX_FRAME, gather_from=GATHER_FROM)
        self._send_lock = trio.Lock()
        self._cut_off = False

    async def send(self, frame: dict[str, Any]) -> None:
        body = dumps_map(frame)
        prefix = frame_prefix(len(body), MAX_FRAME)
        async with self._send_lock:
            if self._cut_off:
                raise BrokenPipeFrame("an earlier frame on this pipe was cut off")
            deadline = trio.current_time() + FINISH_FRAME_SECONDS
            with trio.CancelScope(shield=True, deadline=deadline) as finishing:
                # Apart: joining them copied every pack once more on its way.
                await self._send.send_all(prefix)
                await self._send.send_all(body)
            if finishing.cancelled_caught:
                self._cut_off = True
                raise BrokenPipeFrame("the other end stopped reading in the middle of a frame")

    async def receive(self) -> dict[str, Any] | None:
        """The next frame, or None once the other end closed its side cleanly."""
        try:
            while (body := self._decoder.next_frame()) is None:
                data = await self._receive.receive_some(RECEIVE_CHUNK)
                if not data:
                    if self._decoder.buffered:
                        raise BrokenPipeFrame("the pipe closed in the middle of a frame")
                    return None
                self._decoder.feed(data)
        except WireError as exc:
            raise BrokenPipeFrame(str(exc)) from None
        try:
            frame = loads_map(body)
        except Exception as exc:
            raise BrokenPipeFrame(f"undecodable frame: {type(exc).__name__}") from None
        if not isinstance(frame, dict) or not isinstance(frame.get("op"), str):
            raise BrokenPipeFrame("a frame must be a map with an op")
        return frame

    async def close_send(self) -> None:
        async with self._send_lock:
            await self._send.aclose()
