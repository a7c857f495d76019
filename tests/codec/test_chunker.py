"""Content-defined chunking: lossless, bounded sizes, stable under inserts, bounded reads."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.codec.chunker import ChunkParams, ChunkReader, chunk_bytes, open_chunker

SMALL = ChunkParams(min_size=16 * 1024, avg_size=48 * 1024, max_size=256 * 1024)
TINY = ChunkParams(min_size=64, avg_size=256, max_size=1024)


def _random(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _read_all(path: Path, params: ChunkParams) -> list[bytes]:
    reader = open_chunker(str(path), params)
    try:
        out = []
        while (chunk := reader.next_chunk()) is not None:
            out.append(chunk)
        return out
    finally:
        reader.close()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=8000))
def test_chunks_concatenate_to_input_within_bounds(data: bytes) -> None:
    chunks = chunk_bytes(data, TINY)
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= TINY.max_size for c in chunks)
    assert all(len(c) >= TINY.min_size for c in chunks[:-1])


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=3000), st.integers(0, 3000))
def test_a_file_that_grew_or_shrank_since_it_was_measured_chunks_as_read(
    data: bytes, measured: int
) -> None:
    # `size` is what fstat said before the read; the file may have changed since.
    reader = ChunkReader(io.BytesIO(data), TINY, whole=True, size=measured)
    assert list(reader) == chunk_bytes(data, TINY)


def test_file_chunks_match_buffer_chunks(tmp_path: Path) -> None:
    data = _random(2 * 1024 * 1024, 1)
    path = tmp_path / "f"
    path.write_bytes(data)
    from_file = _read_all(path, SMALL)
    assert from_file == chunk_bytes(data, SMALL)
    assert b"".join(from_file) == data
    assert len(from_file) > 10


def test_empty_file_has_no_chunks(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert _read_all(path, SMALL) == []


def test_insert_in_the_middle_changes_few_chunks(tmp_path: Path) -> None:
    data = _random(8 * 1024 * 1024, 2)
    middle = len(data) // 2
    edited = data[:middle] + b"an insert of a few bytes" + data[middle:]
    (tmp_path / "a").write_bytes(data)
    (tmp_path / "b").write_bytes(edited)
    before = _read_all(tmp_path / "a", SMALL)
    after = _read_all(tmp_path / "b", SMALL)
    assert len(before) > 50
    changed = set(after) - set(before)
    # Only the chunk(s) around the insert differ; everything before and after it is reused.
    assert len(changed) <= 3
    assert len(set(before) & set(after)) >= len(before) - 3


def test_default_params_average_about_one_mib() -> None:
    data = _random(32 * 1024 * 1024, 3)
    sizes = [len(c) for c in chunk_bytes(data)]
    mean = sum(sizes) / len(sizes)
    assert 700 * 1024 < mean < 1500 * 1024
    assert min(sizes[:-1]) >= 256 * 1024
    assert max(sizes) <= 4 * 1024 * 1024


class _CountingStream(io.RawIOBase):
    """A stream that tracks how far reading ran ahead of the chunks handed out."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), len(self._data) - self.position)
        buffer[:n] = self._data[self.position : self.position + n]
        self.position += n
        return n


def test_reading_stays_bounded() -> None:
    data = _random(6 * 1024 * 1024, 4)
    stream = _CountingStream(data)
    reader = ChunkReader(stream, SMALL)  # type: ignore[arg-type]
    emitted = 0
    worst_lead = 0
    while (chunk := reader.next_chunk()) is not None:
        emitted += len(chunk)
        worst_lead = max(worst_lead, stream.position - emitted)
    reader.close()
    assert emitted == len(data)
    # Never more than the chunker's buffer (about twice the largest chunk) ahead.
    assert worst_lead <= 2 * SMALL.max_size
    assert stream.closed


def test_next_chunk_after_end_and_close_is_none(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    reader = open_chunker(str(path), SMALL)
    assert reader.next_chunk() == b"x" * 100
    assert reader.next_chunk() is None
    reader.close()
    assert reader.next_chunk() is None


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        open_chunker(str(tmp_path / "nope"), SMALL)


def test_bad_params_rejected() -> None:
    with pytest.raises(ValueError):
        ChunkParams(min_size=1024, avg_size=512, max_size=4096)
    with pytest.raises(ValueError):
        ChunkParams(min_size=16, avg_size=512, max_size=4096)
