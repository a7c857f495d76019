"""Length-prefixed frames, sans-IO.

`FrameDecoder` is fed whatever bytes arrived and hands back whole frames; it
never reads a socket. The limit is checked on the prefix, before any body is
buffered, so a peer cannot make us hold more than one frame's worth of memory.
"""

from __future__ import annotations

import struct

from p2pbackup.errors import WireError

PREFIX = struct.Struct(">I")
DEFAULT_MAX_FRAME = 8 * 1024 * 1024


def encode_frame(
    payload: bytes | bytearray | memoryview, max_frame: int = DEFAULT_MAX_FRAME
) -> bytes:
    return frame_prefix(len(payload), max_frame) + payload


def frame_prefix(length: int, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """The prefix alone, for a sender that writes a large payload after it uncopied."""
    if length > max_frame:
        raise WireError(f"frame of {length} bytes exceeds the limit of {max_frame}")
    return PREFIX.pack(length)


class FrameDecoder:
    """Turns a byte stream into frames; raises `WireError` on an oversize prefix."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()
        # Bytes of a big frame its reader holds in a buffer of its own meanwhile.
        self.receiving = 0

    def feed(self, data: bytes | bytearray) -> None:
        self._buffer += data

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def announced(self) -> int | None:
        """The length of the frame begun, once its prefix is in; `WireError` if oversize."""
        if len(self._buffer) < PREFIX.size:
            return None
        (length,) = PREFIX.unpack_from(self._buffer)
        if length > self.max_frame:
            raise WireError(f"frame length {length} exceeds the limit of {self.max_frame}")
        return int(length)

    def take_begun(self, body: memoryview) -> int:
        """Move what arrived of the frame begun (not yet whole) into `body`, a buffer
        of its announced length; returns how many bytes that was. The decoder is
        empty after, ready for the frame after this one."""
        length = self.announced()
        if length is None or len(body) != length or len(self._buffer) >= PREFIX.size + length:
            raise ValueError("take_begun needs a begun frame, not yet whole, and its length")
        got = len(self._buffer) - PREFIX.size
        with memoryview(self._buffer) as view:
            body[:got] = view[PREFIX.size :]
        self._buffer = bytearray()
        return got

    def next_frame(self) -> bytes | None:
        """The next complete frame, or None until more bytes arrive."""
        length = self.announced()
        if length is None or len(self._buffer) < (end := PREFIX.size + length):
            return None
        # One copy out of the buffer: slicing the bytearray first would make two, and
        # every share and every pack crosses here (fresh pages are dear on a VM).
        with memoryview(self._buffer) as view:
            frame = bytes(view[PREFIX.size : end])
        del self._buffer[:end]
        return frame
