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
# A frame at least this long is worth a buffer of its own (shares, packs).
GATHER_FROM = 64 * 1024


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
    """Turns a byte stream into frames; raises `WireError` on an oversize prefix.

    A big frame may be gathered in a buffer of its own, of the length its prefix
    announced, and handed out as a view of it: growing one buffer for the whole
    stream and copying each frame out of it cost more than a share's cipher did.
    A reader gathers a frame itself (`gather`, then reads into `unfilled`), or
    lets `feed` gather each frame of at least `gather_from` bytes (None: never,
    as for a remote nothing is allocated for before it is budgeted)."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, gather_from: int | None = None) -> None:
        self.max_frame = max_frame
        self.gather_from = gather_from
        self._buffer = bytearray()
        self._big: memoryview | None = None  # the frame being gathered
        self._filled = 0  # of it
        # Every byte fed or filled so far: whether the far end is sending at all.
        self.received = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self.received += len(data)
        if self._big is None:
            self._buffer += data
            self._gather_if_big()
            return
        with memoryview(data) as view:
            take = min(len(view), len(self._big) - self._filled)
            self._big[self._filled : self._filled + take] = view[:take]
            self._filled += take
            self._buffer += view[take:]

    @property
    def buffered(self) -> int:
        """Bytes received and not yet handed out as frames."""
        gathered = 0 if self._big is None else PREFIX.size + self._filled
        return len(self._buffer) + gathered

    @property
    def holding(self) -> int:
        """Bytes of memory held: a frame being gathered counts whole."""
        gathered = 0 if self._big is None else PREFIX.size + len(self._big)
        return len(self._buffer) + gathered

    def announced(self) -> int | None:
        """The length of the frame begun, once its prefix is in; `WireError` if oversize."""
        if self._big is not None:
            return len(self._big)
        if len(self._buffer) < PREFIX.size:
            return None
        (length,) = PREFIX.unpack_from(self._buffer)
        if length > self.max_frame:
            raise WireError(f"frame length {length} exceeds the limit of {self.max_frame}")
        return int(length)

    def gather(self, body: memoryview) -> None:
        """Gather the frame begun, not yet whole, in `body`: writable and of its
        announced length. What arrived of it moves there; the rest is fed, or read
        into `unfilled()` and counted with `filled`."""
        length = self.announced()
        if self._big is not None or length is None or len(body) != length:
            raise ValueError("gather needs a begun frame not yet gathered, and its length")
        if len(self._buffer) >= PREFIX.size + length:
            raise ValueError("the frame begun is already whole")
        got = len(self._buffer) - PREFIX.size
        with memoryview(self._buffer) as view:
            body[:got] = view[PREFIX.size :]
        self._buffer = bytearray()
        self._big, self._filled = body, got

    def unfilled(self) -> memoryview:
        """The part of the gathered frame still to come, to read into directly."""
        if self._big is None:
            raise ValueError("no frame is being gathered")
        return self._big[self._filled :]

    def filled(self, count: int) -> None:
        """`count` more bytes of the gathered frame were read into `unfilled()`."""
        if self._big is None or not 0 <= count <= len(self._big) - self._filled:
            raise ValueError("more bytes filled than the gathered frame has room for")
        self._filled += count
        self.received += count

    def next_frame(self) -> bytes | memoryview | None:
        """The next complete frame, or None until more bytes arrive; a gathered one
        comes as a view of its own buffer."""
        if self._big is not None:
            if self._filled < len(self._big):
                return None
            frame, self._big, self._filled = self._big, None, 0
            self._gather_if_big()
            return frame
        length = self.announced()
        if length is None or len(self._buffer) < (end := PREFIX.size + length):
            return None
        # One copy out of the buffer: slicing the bytearray first would make two.
        with memoryview(self._buffer) as view:
            frame_bytes = bytes(view[PREFIX.size : end])
        del self._buffer[:end]
        self._gather_if_big()
        return frame_bytes

    def _gather_if_big(self) -> None:
        if self.gather_from is None:
            return
        length = self.announced()
        whole = length is not None and len(self._buffer) >= PREFIX.size + length
        if length is not None and length >= self.gather_from and not whole:
            self.gather(memoryview(bytearray(length)))
