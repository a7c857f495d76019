"""Sparse files come back sparse: holes are not read on backup and are left on restore,
and the content is the same byte for byte."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from p2pbackup.backup.blobs import BlobCodec, ChunkParams
from p2pbackup.backup.catalog import Catalog
from p2pbackup.base.offload import to_thread
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fs import KEYS, backup, chunks_by_pack, read_index, restorer, walk_snapshot

MIB = 1 << 20
GIB = 1 << 30
BLOCK = 4096


def holes_supported(folder: Path) -> bool:
    """Whether files in `folder` can have holes that SEEK_DATA reports."""
    if not hasattr(os, "SEEK_DATA"):
        return False
    probe = folder / "hole-probe"
    with open(probe, "wb") as handle:
        handle.truncate(1 << 20)
        handle.flush()
        try:
            data = os.lseek(handle.fileno(), 0, os.SEEK_DATA)
        except OSError:
            data = 1 << 20  # ENXIO: no data at all, a hole to the end
        blocks = os.fstat(handle.fileno()).st_blocks
    probe.unlink()
    return data == 1 << 20 and blocks == 0


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    if not holes_supported(tmp_path):
        pytest.skip("the file system of the temporary folder does not keep holes")
    return tmp_path


def blobs(pack_target: int = 4 * MIB) -> BlobCodec:
    # Real chunk sizes: a GiB of hole in 16 KiB chunks would test Python, not holes.
    return BlobCodec(KEYS, ChunkParams(), pack_target=pack_target)


def sparse(path: Path, size: int, data: list[tuple[int, int]], seed: int = 1) -> None:
    """A file of `size` bytes, holes but for random data at (offset, length)."""
    rng = random.Random(seed)
    with open(path, "wb") as handle:
        for offset, length in data:
            handle.seek(offset)
            handle.write(rng.randbytes(length))
        handle.truncate(size)


def data_regions(path: Path) -> list[tuple[int, int]]:
    """Where the file system says the file has data."""
    regions = []
    with open(path, "rb") as handle:
        fd, pos, end = handle.fileno(), 0, os.fstat(handle.fileno()).st_size
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            pos = os.lseek(fd, start, os.SEEK_HOLE)
            regions.append((start, pos))
    return regions


def assert_same_file(original: Path, restored: Path) -> None:
    """Same size and bytes, compared where either has data: elsewhere both are holes,
    which read as zeros. Then allocated blocks within 10%."""
    a, b = os.stat(original), os.stat(restored)
    assert a.st_size == b.st_size
    assert a.st_mtime_ns == b.st_mtime_ns
    with open(original, "rb") as fa, open(restored, "rb") as fb:
        for start, end in data_regions(original) + data_regions(restored):
            for pos in range(start, end, 16 * MIB):
                n = min(16 * MIB, end - pos)
                assert os.pread(fa.fileno(), n, pos) == os.pread(fb.fileno(), n, pos), pos
    assert abs(b.st_blocks - a.st_blocks) <= a.st_blocks // 10, (a.st_blocks, b.st_blocks)


def read_so_far() -> int:
    """Bytes this process has had from read calls: holes read would count."""
    try:
        with open("/proc/self/io") as handle:
            fields = dict(line.split(": ") for line in handle.read().splitlines())
    except OSError:
        pytest.skip("no /proc/self/io to count the bytes read")
    return int(fields["rchar"])


async def round_trip(
    tmp: Path, codec: BlobCodec | None = None, threads: bool = False
) -> tuple[Path, Path, MemoryPackStore]:
    """Back `tmp/src` up and restore it to `tmp/out`; the two folders and the store."""
    codec = codec or blobs()
    store = MemoryPackStore()
    kwargs = {"run_sync": to_thread} if threads else {}
    snapshot, eng = await backup(codec, Catalog(tmp / "c.db"), store, tmp / "src", **kwargs)
    assert eng.stats.errors == []
    stats = await restorer(codec, store, **kwargs).run(snapshot, tmp / "out")
    assert stats.failures == []
    return tmp / "src", tmp / "out" / "src", store


async def test_a_sparse_gib_is_not_read_and_comes_back_sparse(tmp: Path) -> None:
    src = tmp / "src"
    src.mkdir()
    rng = random.Random(7)
    blocks = sorted(rng.randrange(GIB // BLOCK) * BLOCK for _ in range(8))
    sparse(src / "disk.img", GIB, [(at, BLOCK) for at in blocks] + [(12_345, 100)])
    before = read_so_far()
    _, out, store = await round_trip(tmp, threads=True)
    # Holes are neither read nor sent: the data, a zero chunk, trees and index.
    assert read_so_far() - before < 32 * MIB
    assert sum(len(pack) for pack in store.packs.values()) < 4 * MIB
    assert_same_file(src / "disk.img", out / "disk.img")


@pytest.mark.parametrize(
    "layout",
    [
        [(60 * MIB, MIB)],  # a leading hole
        [(0, MIB)],  # a trailing hole
        [],  # holes only
        [(0, 3 * MIB + 5), (9 * MIB - 7, 20_000), (40 * MIB, 123)],  # unaligned data
    ],
    ids=["leading", "trailing", "all-holes", "unaligned"],
)
async def test_holes_anywhere_come_back(tmp: Path, layout: list[tuple[int, int]]) -> None:
    (tmp / "src").mkdir()
    size = GIB if not layout else 64 * MIB
    sparse(tmp / "src" / "f", size, layout)
    src, out, _ = await round_trip(tmp)
    assert_same_file(src / "f", out / "f")
    if not layout:
        assert os.stat(out / "f").st_blocks == 0


async def test_a_dense_file_of_zeros_comes_back_equal(tmp: Path) -> None:
    (tmp / "src").mkdir()
    (tmp / "src" / "zeros").write_bytes(bytes(9 * MIB + 1))
    assert os.stat(tmp / "src" / "zeros").st_blocks * 512 >= 9 * MIB
    src, out, _ = await round_trip(tmp)
    # It may come back sparse: the same bytes, fewer blocks.
    assert (out / "zeros").read_bytes() == (src / "zeros").read_bytes()
    assert os.stat(out / "zeros").st_mtime_ns == os.stat(src / "zeros").st_mtime_ns


async def test_a_file_spread_over_packs_keeps_its_holes(tmp: Path) -> None:
    """A file whose chunks lie in several packs is made at its size first, then
    written pack by pack: its holes, trailing one included, must survive that."""
    (tmp / "src").mkdir()
    rng = random.Random(3)
    data = [(i * 8 * MIB + rng.randrange(MIB), 300_000) for i in range(12)]
    sparse(tmp / "src" / "f", 128 * MIB, data)
    codec = blobs(pack_target=MIB)
    store = MemoryPackStore()
    snapshot, _ = await backup(codec, Catalog(tmp / "c.db"), store, tmp / "src")
    reader = await read_index(codec, store, snapshot)
    files, _ = await walk_snapshot(reader, snapshot.tree)
    ids = {cid for cid, _ in files[b"src/f"].chunks}
    assert sum(1 for held in chunks_by_pack(reader.index).values() if held & ids) > 3
    stats = await restorer(codec, store).run(snapshot, tmp / "out")
    assert stats.failures == []
    assert_same_file(tmp / "src" / "f", tmp / "out" / "src" / "f")


async def test_restore_over_an_old_file_leaves_no_old_bytes_in_the_holes(tmp: Path) -> None:
    (tmp / "src").mkdir()
    sparse(tmp / "src" / "f", 32 * MIB, [(10 * MIB, BLOCK)])
    old = tmp / "out" / "src"
    old.mkdir(parents=True)
    (old / "f").write_bytes(b"\xff" * 40 * MIB)
    src, out, _ = await round_trip(tmp)
    assert (out / "f").read_bytes() == (src / "f").read_bytes()
    assert_same_file(src / "f", out / "f")


async def test_a_second_backup_reads_only_the_data_of_a_changed_sparse_file(
    tmp: Path,
) -> None:
    (tmp / "src").mkdir()
    path = tmp / "src" / "f"
    sparse(path, GIB, [(100 * MIB, BLOCK)])
    codec, store, catalog = blobs(), MemoryPackStore(), Catalog(tmp / "c.db")
    await backup(codec, catalog, store, tmp / "src")
    _, again = await backup(codec, catalog, store, tmp / "src")
    assert again.stats.files_unchanged == 1 and again.stats.bytes_read == 0
    with open(path, "r+b") as handle:
        handle.seek(700 * MIB)
        handle.write(b"new" * 1000)
    before = read_so_far()
    snapshot, changed = await backup(codec, catalog, store, tmp / "src")
    assert read_so_far() - before < 32 * MIB
    assert changed.stats.chunks_new <= 3  # the changed chunk, its tree, the index
    stats = await restorer(codec, store).run(snapshot, tmp / "out")
    assert stats.failures == []
    assert_same_file(path, tmp / "out" / "src" / "f")
