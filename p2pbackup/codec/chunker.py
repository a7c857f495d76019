"""Content-defined chunking: cut points follow the bytes, not their offsets.

An insert in the middle of a big file then moves only the cut points near it,
so a second backup sends a few new chunks instead of the whole tail. Files are
read as a stream through a buffer of about twice the maximum chunk size, so
memory stays bounded whatever the file size.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

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


class ChunkReader:
    """Yields one chunk at a time from a binary stream; `close()` closes the stream."""

    def __init__(
        self,
        stream: BinaryIO,
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
        head = stream.read(limit + 1) if whole else b""
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
            self._chunks = (chunk.data for chunk in params.fastcdc().cut_stream(stream))

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
    catalog that records it with the chunks read sees any later write as a change."""
    stream = open(path, "rb", buffering=0)  # noqa: SIM115 - the reader owns and closes it
    try:
        opened = os.fstat(stream.fileno())
    except OSError:
        stream.close()
        raise
    size = opened.st_size
    return ChunkReader(stream, params, whole=size <= params.max_size, size=size, opened=opened)


def chunk_bytes(data: bytes, params: ChunkParams = DEFAULT_PARAMS) -> list[bytes]:
    """Chunk an in-memory buffer the same way a file would be (tests, small blobs)."""
    return list(ChunkReader(io.BytesIO(data), params))
