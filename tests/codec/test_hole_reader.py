"""Sparse files: holes are chunked as zeros without being read, into the very chunks a
plain read gives; a restore writes a chunk but for its runs of zeros."""

from __future__ import annotations

import errno
import io
import os
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.codec.chunker import (
    ZERO_MIN,
    ChunkParams,
    ChunkReader,
    HoleReader,
    chunk_bytes,
    data_spans,
    is_zeros,
    open_chunker,
    zeros,
)
from p2pbackup.codec.chunks import chunk_id
from p2pbackup.crypto.keys import OwnerKeys
from tests.backup.test_sparse import holes_supported

BLOCK = 4096
PARAMS = ChunkParams(min_size=1024, avg_size=4096, max_size=16 * 1024)


@pytest.fixture
def holes(tmp_path: Path) -> Path:
    if not holes_supported(tmp_path):
        pytest.skip("the file system of the temporary folder does not keep holes")
    return tmp_path


class CountingFile(io.FileIO):
    """A raw file that counts the bytes read from it."""

    read_bytes = 0

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer) or 0
        self.read_bytes += n
        return n


def lay_out(path: Path, layout: list[tuple[bool, int]], tail: int, seed: int) -> int:
    """Write blocks of random data (True) or leave holes (False), then `tail` bytes of
    data or, when negative, that much hole at the end; the bytes of data written."""
    rng = random.Random(seed)
    offset = written = 0
    with open(path, "wb") as handle:
        for is_data, blocks in layout:
            if is_data:
                handle.seek(offset)
                handle.write(rng.randbytes(blocks * BLOCK))
                written += blocks * BLOCK
            offset += blocks * BLOCK
        if tail > 0:
            handle.seek(offset)
            handle.write(rng.randbytes(tail))
            written += tail
        handle.truncate(offset + abs(tail))
    return written


def hole_chunks(path: Path, params: ChunkParams = PARAMS) -> tuple[list[bytes], int]:
    """The file's chunks through a hole reader, and the bytes it read from disk."""
    raw = CountingFile(path, "rb")
    reader = HoleReader(raw)
    with ChunkReader(reader, params) as chunker:
        chunks = list(chunker)
    assert raw.closed
    return chunks, raw.read_bytes


layouts = st.lists(st.tuples(st.booleans(), st.integers(1, 6)), max_size=12)
tails = st.integers(-3 * BLOCK, 3 * BLOCK)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(layouts, tails, st.integers(0, 2**32))
def test_holes_give_the_chunks_of_a_plain_read_without_being_read(
    holes: Path, layout: list[tuple[bool, int]], tail: int, seed: int
) -> None:
    path = holes / "f"
    data_bytes = lay_out(path, layout, tail, seed)
    plain = chunk_bytes(path.read_bytes(), PARAMS)
    chunks, read = hole_chunks(path)
    # Same ids and lengths as a plain read: dedup with older snapshots holds.
    assert [len(c) for c in chunks] == [len(c) for c in plain]
    assert chunks == plain
    assert read == data_bytes
    # A chunk wholly in a hole is the shared zeros object: its id costs no hashing.
    for chunk in chunks:
        if not any(chunk):
            assert chunk is zeros(len(chunk))


def test_open_chunker_maps_holes_of_a_big_file_only(
    holes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = os.lseek

    def spy(fd: int, pos: int, how: int) -> int:
        calls.append(how)
        return real(fd, pos, how)

    monkeypatch.setattr(os, "lseek", spy)
    dense, sparse, small = holes / "dense", holes / "sparse", holes / "small"
    lay_out(dense, [(True, 64)], 0, 1)
    lay_out(sparse, [(True, 2), (False, 60), (True, 2)], 0, 2)
    lay_out(small, [(False, 3)], 10, 3)  # one chunk at most: read whole
    for path in (dense, small):
        with open_chunker(str(path), PARAMS) as reader:
            assert b"".join(reader) == path.read_bytes()
    assert calls == []  # a dense file costs no system call to rule out
    with open_chunker(str(sparse), PARAMS) as reader:
        assert list(reader) == chunk_bytes(sparse.read_bytes(), PARAMS)
    assert os.SEEK_DATA in calls


def test_a_file_system_that_cannot_say_is_read_plainly(
    holes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.lseek

    def no_holes(fd: int, pos: int, how: int) -> int:
        if how in (os.SEEK_DATA, os.SEEK_HOLE):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, pos, how)

    monkeypatch.setattr(os, "lseek", no_holes)
    path = holes / "f"
    lay_out(path, [(False, 5), (True, 3), (False, 7)], -BLOCK, 4)
    chunks, read = hole_chunks(path)
    assert chunks == chunk_bytes(path.read_bytes(), PARAMS)
    assert read == path.stat().st_size


def test_a_file_that_grew_while_read_is_read_to_its_new_end(holes: Path) -> None:
    path = holes / "f"
    lay_out(path, [(True, 2), (False, 30)], 0, 5)
    raw = CountingFile(path, "rb")
    reader = HoleReader(raw)
    buffer = bytearray(BLOCK)
    assert reader.readinto(memoryview(buffer)) == BLOCK
    with open(path, "ab") as handle:
        handle.write(b"grown")
    got = bytes(buffer)
    while n := reader.readinto(memoryview(buffer)):
        got += buffer[:n]
    reader.close()
    assert got == path.read_bytes()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 3 * ZERO_MIN)), max_size=8))
def test_data_spans_leave_out_only_long_runs_of_zeros(runs: list[tuple[bool, int]]) -> None:
    rng = random.Random(len(runs))
    data = b"".join(
        bytes(n) if zero else rng.randbytes(n).replace(b"\0", b"\1") for zero, n in runs
    )
    spans = data_spans(data)
    rebuilt = bytearray(len(data))
    end = 0
    for start, stop in spans:
        assert end <= start < stop <= len(data)
        gap = data[end:start]
        assert not any(gap) and (len(gap) >= ZERO_MIN or not gap)
        rebuilt[start:stop] = data[start:stop]
        end = stop
    assert not any(data[end:]) and (len(data) - end >= ZERO_MIN or end == len(data))
    assert bytes(rebuilt) == data  # every byte that is not zero is written


def test_is_zeros_needs_a_block_of_zeros() -> None:
    assert is_zeros(bytes(ZERO_MIN)) and is_zeros(bytes(5 * ZERO_MIN + 3))
    assert not is_zeros(bytes(ZERO_MIN - 1))
    for where in (0, 100, ZERO_MIN - 1):
        data = bytearray(ZERO_MIN)
        data[where] = 1
        assert not is_zeros(bytes(data))


def test_codec_knows_zero_chunks_by_id() -> None:
    keys = OwnerKeys.from_master(bytes(32))
    codec, other = BlobCodec(keys, PARAMS), BlobCodec(keys, PARAMS)
    hole = bytes(3 * ZERO_MIN)
    cid = codec.chunk_id(hole)
    assert cid == chunk_id(keys.chunk_id_key, hole)  # the id a plain hash gives
    assert cid == codec.chunk_id(bytes(len(hole))) == codec.chunk_id(zeros(len(hole)))
    assert cid != codec.chunk_id(bytes(2 * ZERO_MIN))
    assert codec.zero_length(cid) == len(hole)
    assert codec.zero_length(codec.chunk_id(b"data" * 4096)) is None
    # A restore's codec learns the id from the first such chunk it opens.
    assert other.zero_length(cid) is None
    assert other.open(cid, codec.seal(cid, hole)) == hole
    assert other.zero_length(cid) == len(hole)
