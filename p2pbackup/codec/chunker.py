"""Content-defined chunking: cut points follow the bytes, not their offsets.

An insert in the middle of a big file then moves only the cut points near it,
so a second backup sends a few new chunks instead of the whole tail. Files are
read as a stream through a buffer of about twice the maximum chunk size, so
memory stays bounded whatever the file size.

A big file that may have holes is read through `HoleReader`: its holes are fed
to the chunker as zeros, never read from disk, and a chunk lying in a hole is
handed out as the shared `zeros` of its length. The chunks are exactly those of
a plain read (cut points depend on the bytes alone), so they dedup with every
earlier snapshot of the file.
"""

from __future__ import annotations

import errno
import functools
import io
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from pyfastcdc import FastCDC

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class ChunkParams:
    """Chunk size bounds. pyfastcdc's real mean is about `avg_size + min_size`; the
    defaults aim at ~1 MiB. Allowed ranges (from pyfastcdc): min 64 B..1 MiB,
    avg 256 B..4 MiB, max 1 KiB..16 MiB, min <= avg <= max."""

    min_size: int = 256 * KIB
    avg_size: int = 768 * KIB
    max_size: int = 4 * MIB

    def __post_init__(self) -> None:
        if not 64 <= self.min_size <= MIB:
            raise ValueError(f"min_size {self.min_size} outside [64, 1 MiB]")
        if not 256 <= self.avg_size <= 4 * MIB:
            raise ValueError(f"avg_size {self.avg_size} outside [256, 4 MiB]")
        if not KIB <= self.max_size <= 16 * MIB:
            raise ValueError(f"max_size {self.max_size} outside [1 KiB, 16 MiB]")
        if not self.min_size <= self.avg_size <= self.max_size:
            raise ValueError("chunk sizes must satisfy min <= avg <= max")

    def fastcdc(self) -> FastCDC:
        return FastCDC(self.avg_size, min_size=self.min_size, max_size=self.max_size)


DEFAULT_PARAMS = ChunkParams()

# The smallest chunk worth telling apart as all zeros: a restore leaves a hole for
# it, and it is at least one file system block.
ZERO_MIN = 4 * KIB
_ZERO_FILL = memoryview(bytes(MIB))  # what a hole reads as, a MiB at a time
_SEEK_DATA: int | None = getattr(os, "SEEK_DATA", None)
_SEEK_HOLE: int | None = getattr(os, "SEEK_HOLE", None)


@functools.lru_cache(maxsize=8)
def zeros(n: int) -> bytes:
    """`n` zero bytes, shared: the chunks of a long hole are all one length, and
    comparing a chunk with the very object it is costs nothing."""
    return bytes(n)


def is_zeros(data: bytes | bytearray) -> bool:
    """Whether `data` is all zero bytes and at least `ZERO_MIN` long. Cheap for data:
    the first byte almost always settles it, and only then is it compared."""
    n = len(data)
    return n >= ZERO_MIN and not data[0] and not data[-1] and data == zeros(n)


_RUN_STEP = 64 * KIB


def data_spans(data: bytes | bytearray) -> list[tuple[int, int]]:
    """The (start, end) spans of `data` outside its runs of `ZERO_MIN` zero bytes or
    more: what a restore writes, leaving the runs as holes in a new file.

    Data without such a run costs one search, which skips `ZERO_MIN` bytes at each
    non-zero byte it meets; a run costs a comparison per 64 KiB of it."""
    block = zeros(ZERO_MIN)
    spans: list[tuple[int, int]] = []
    pos, n = 0, len(data)
    while pos < n and (run := data.find(block, pos)) >= 0:
        if run > pos:
            spans.append((pos, run))
        pos = run + ZERO_MIN
        for step in (_RUN_STEP, ZERO_MIN):
            while data[pos : pos + step] == zeros(step):
                pos += step
        tail = data[pos : pos + ZERO_MIN]
        pos += len(tail) - len(tail.lstrip(b"\0"))
    if pos < n:
        spans.append((pos, n))
    return spans


def may_have_holes(st: os.stat_result) -> bool:
    """Fewer blocks allocated than the size needs: the file may be sparse (or
    compressed, or inline). A dense file costs no system call to rule out."""
    blocks = getattr(st, "st_blocks", None)
    return _SEEK_DATA is not None and blocks is not None and blocks * 512 < st.st_size


class HoleReader(io.RawIOBase):
    """A file read as a stream whose holes read as zeros without touching the disk.

    The file system says where data and holes lie (`SEEK_DATA`, `SEEK_HOLE`), a
    region at a time. One that cannot say (EINVAL, EOPNOTSUPP) is read plainly
    from there on. `covers` tells whether a span lies in a hole seen so far."""

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__()
        self._raw = raw
        self._fd = raw.fileno()
        self._pos = 0
        self._data_end = 0  # [pos, data_end) is data
        self._hole_end = 0  # [pos, hole_end) is a hole
        self._mapped = True  # False once the file system could not say
        self._holes: deque[tuple[int, int]] = deque()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= max(self._data_end, self._hole_end) and not self._find():
            return 0
        pos = self._pos
        if pos < self._hole_end:
            n = min(len(buffer), self._hole_end - pos, len(_ZERO_FILL))
            buffer[:n] = _ZERO_FILL[:n]
        else:
            n = self._raw.readinto(buffer[: min(len(buffer), self._data_end - pos)]) or 0
            if n == 0:  # shorter than it was: the end
                self._data_end = self._hole_end = pos
                return 0
        self._pos = pos + n
        return n

    def _find(self) -> bool:
        """Map the region at the current position; False at the end of the file."""
        pos, fd = self._pos, self._fd
        if self._mapped:
            assert _SEEK_DATA is not None and _SEEK_HOLE is not None
            try:
                data = os.lseek(fd, pos, _SEEK_DATA)
                hole = os.lseek(fd, data, _SEEK_HOLE) if data == pos else data
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # the file system cannot say
                    data = hole = -1
                else:  # no data at or after `pos`: a hole up to the end, or the end
                    data = hole = os.lseek(fd, 0, os.SEEK_END)
                    if data <= pos:
                        return False
            if data > pos:
                self._hole_end = data
                self._holes.append((pos, data))
                return True
            # Data up to `hole`; none found at `pos` after all means the file system
            # cannot say, or the file changed under us: read the rest plainly.
            self._mapped = hole > pos
        os.lseek(fd, pos, os.SEEK_SET)
        self._data_end = hole if self._mapped else pos + (1 << 62)
        return True

    def covers(self, offset: int, length: int) -> bool:
        """Whether [offset, offset + length) lies in one hole. Asked in increasing
        offset order: holes ending before `offset` are forgotten."""
        holes = self._holes
        while holes and holes[0][1] <= offset:
            holes.popleft()
        return bool(holes) and holes[0][0] <= offset and offset + length <= holes[0][1]

    def close(self) -> None:
        self._raw.close()
        super().close()


class ChunkReader:
    """Yields one chunk at a time from a binary stream; `close()` closes the stream."""

    def __init__(
        self,
        stream: BinaryIO | HoleReader,
        params: ChunkParams = DEFAULT_PARAMS,
        *,
        whole: bool = False,
        size: int | None = None,
        opened: os.stat_result | None = None,
    ) -> None:
        self._stream = stream
        self._done = False
        # The file's state when it was opened, before any byte was read (see `open_chunker`).
        self.opened = opened
        # Read one byte more than expected, to see a file that grew. Asking for the
        # chunk limit instead cost a 4 MiB allocation (and its page faults) per small
        # file: reading a tree of headers took three times as long.
        limit = params.max_size if size is None else min(size, params.max_size)
        head = cast(BinaryIO, stream).read(limit + 1) if whole else b""
        if whole and len(head) <= min(limit, params.min_size):
            # FastCDC never cuts before `min_size`: such a file is one chunk (or none).
            self._chunks: Iterator[bytes | memoryview] = iter([head] if head else [])
        elif whole and len(head) <= limit:
            # pyfastcdc's stream reader sets up a buffer of several MiB per call,
            # which costs more than chunking itself on a folder of small files; a
            # file no larger than one chunk is read at once and cut in memory.
            self._chunks = (chunk.data for chunk in params.fastcdc().cut_buf(head))
        else:
            if whole:  # it grew since it was measured: stream it after all
                stream.seek(0)
            cuts = params.fastcdc().cut_stream(stream)
            if isinstance(stream, HoleReader):
                self._chunks = (
                    zeros(c.length) if stream.covers(c.offset, c.length) else c.data for c in cuts
                )
            else:
                self._chunks = (chunk.data for chunk in cuts)

    def next_chunk(self) -> bytes | None:
        """The next chunk's bytes (a copy: pyfastcdc reuses its buffer), or None at the end."""
        if self._done:
            return None
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._done = True
            return None
        return chunk if isinstance(chunk, bytes) else bytes(chunk)

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self.next_chunk()) is not None:
            yield chunk

    def close(self) -> None:
        self._done = True
        self._stream.close()

    def __enter__(self) -> ChunkReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_chunker(path: str | bytes, params: ChunkParams = DEFAULT_PARAMS) -> ChunkReader:
    """Open a file for chunking; raises `OSError` if it cannot be read.

    The reader's `opened` is the file's state before its first byte was read: a
    catalog that records it with the chunks read sees any later write as a change.
    A file of one chunk at most is read whole, holes and all: mapping them would
    cost more system calls than reading them."""
    raw = open(path, "rb", buffering=0)  # noqa: SIM115 - the reader owns and closes it
    try:
        opened = os.fstat(raw.fileno())
    except OSError:
        raw.close()
        raise
    size = opened.st_size
    whole = size <= params.max_size
    stream = HoleReader(raw) if not whole and may_have_holes(opened) else raw
    return ChunkReader(stream, params, whole=whole, size=size, opened=opened)


def chunk_bytes(data: bytes, params: ChunkParams = DEFAULT_PARAMS) -> list[bytes]:
    """Chunk an in-memory buffer the same way a file would be (tests, small blobs)."""
    return list(ChunkReader(io.BytesIO(data), params))
