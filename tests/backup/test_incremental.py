"""Second backups: unchanged files are not read, unchanged trees not sent, and equal data
is stored once."""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path

import pytest

from p2pbackup.backup.blobs import BlobCodec, ChunkReader
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import RACY_SECONDS
from p2pbackup.codec.chunker import chunk_bytes
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fs import (
    BASE_NS,
    KEYS,
    PACK_TARGET,
    PARAMS,
    backup,
    codec,
    index_blob_entries,
    read_index,
    restorer,
    snapshot_of,
    walk_snapshot,
    write,
)

FILES = 200


def build_many(root: Path, rng: random.Random) -> list[Path]:
    paths = []
    for i in range(FILES):
        folder = root / f"sub{i % 4}" / ("inner" if i % 8 < 4 else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{i:03}.bin"
        write(path, rng.randbytes(rng.randrange(100, 6000)), mtime_ns=BASE_NS + i)
        paths.append(path)
    return paths


async def test_unchanged_tree_reads_and_sends_nothing(tmp_path: Path) -> None:
    src = tmp_path / "data"
    build_many(src, random.Random(2))
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    first, eng1 = await backup(blobs, catalog, store, src)
    assert eng1.stats.files == FILES
    assert eng1.stats.bytes_read == eng1.stats.bytes > 0
    assert eng1.stats.index_blobs == 1
    puts, packs = store.puts, dict(store.packs)

    second, eng2 = await backup(blobs, catalog, store, src)
    stats = eng2.stats
    assert stats.bytes_read == 0
    assert stats.files == stats.files_unchanged == FILES
    assert stats.bytes == eng1.stats.bytes
    assert stats.chunks_new == 0  # not even a tree
    assert stats.packs == 0 and stats.bytes_sent == 0 and stats.index_blobs == 0
    assert store.puts == puts and store.packs == packs  # no index blob either
    assert second.tree == first.tree
    assert second.index == first.index
    assert second.snapshot_id != first.snapshot_id


async def test_changed_files_send_only_their_new_chunks(tmp_path: Path) -> None:
    src = tmp_path / "data"
    rng = random.Random(3)
    paths = build_many(src, rng)
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    first, _ = await backup(blobs, catalog, store, src)
    # 1% of the files, both in data/sub1/inner: rewritten in place (folder mtimes stay).
    changed = [p for p in paths if p.parent == src / "sub1" / "inner"][:2]
    assert len(changed) == FILES // 100
    new_ids: set[bytes] = set()
    for path in changed:
        data = rng.randbytes(path.stat().st_size + 5000)
        write(path, data)
        new_ids |= {blobs.chunk_id(c) for c in chunk_bytes(data, PARAMS)}
    new_ids = {cid for cid in new_ids if not catalog.has_chunk(cid)}
    assert new_ids
    size_changed = sum(p.stat().st_size for p in changed)

    third, eng = await backup(blobs, catalog, store, src)
    stats = eng.stats
    assert stats.bytes_read == size_changed
    assert stats.files_unchanged == FILES - len(changed)
    # New: the two files' chunks, and the trees of inner, sub1, data and the snapshot root.
    assert stats.chunks_new == len(new_ids) + 4
    reader = await read_index(blobs, store, third)
    _, trees = await walk_snapshot(reader, third.tree)
    old_reader = await read_index(blobs, store, first)
    _, old_trees = await walk_snapshot(old_reader, first.tree)
    assert {k for k in trees if trees[k] != old_trees[k]} == {
        b"",
        b"data",
        b"data/sub1",
        b"data/sub1/inner",
    }
    sent_ids = {cid for cid in reader.index if cid not in old_reader.index}
    assert sent_ids == new_ids | {
        trees[k] for k in (b"", b"data", b"data/sub1", b"data/sub1/inner")
    }
    assert stats.index_blobs == 1
    assert stats.bytes_sent < size_changed + 20_000  # the new data, trees and one index blob

    out = tmp_path / "out"
    result = await restorer(blobs, store).run(third, out)
    assert result.failures == []
    assert snapshot_of(out / "data") == snapshot_of(src)


async def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.mkdir()
    write(src / "f", b"a" * 3000, mtime_ns=BASE_NS)
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    await backup(blobs, catalog, store, src)
    write(src / "f", b"b" * 3000, mtime_ns=BASE_NS)  # same size, mtime put back
    snapshot, eng = await backup(blobs, catalog, store, src)
    assert eng.stats.bytes_read == 3000
    out = tmp_path / "out"
    await restorer(blobs, store).run(snapshot, out)
    assert (out / "data" / "f").read_bytes() == b"b" * 3000


class _WritesWhileReading(BlobCodec):
    """Rewrites `victim` (same size, a later mtime) right after the engine opens it."""

    def __init__(self, victim: Path) -> None:
        super().__init__(KEYS, PARAMS, pack_target=PACK_TARGET)
        self.victim = bytes(victim)
        self.armed = False

    def open_chunker(self, path: str | bytes) -> ChunkReader:
        reader = super().open_chunker(path)
        if self.armed and path == self.victim:
            self.armed = False
            size = os.path.getsize(path)
            write(path, b"n" * size, mtime_ns=BASE_NS + 10**9)
        return reader


@pytest.mark.parametrize("size", [3000, 100_000])  # read ahead whole, or streamed
async def test_a_file_written_while_it_is_read_is_read_again(tmp_path: Path, size: int) -> None:
    src = tmp_path / "data"
    src.mkdir()
    write(src / "f", b"o" * size, mtime_ns=BASE_NS)
    blobs, store = _WritesWhileReading(src / "f"), MemoryPackStore()
    blobs.armed = True
    catalog = Catalog(tmp_path / "catalog.db")
    await backup(blobs, catalog, store, src)
    snapshot, eng = await backup(blobs, catalog, store, src)
    # Whatever the first run read, the second reads the file again: its state is no
    # longer the one it had when the first run opened it.
    assert eng.stats.bytes_read == size
    out = tmp_path / "out"
    await restorer(blobs, store).run(snapshot, out)
    assert (out / "data" / "f").read_bytes() == b"n" * size


async def test_identical_files_are_stored_once(tmp_path: Path) -> None:
    src = tmp_path / "data"
    (src / "x").mkdir(parents=True)
    (src / "y").mkdir()
    body = random.Random(4).randbytes(300_000)
    write(src / "x" / "copy1", body)
    write(src / "y" / "copy2", body)
    write(src / "y" / "twice", body + body)
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    snapshot, eng = await backup(blobs, catalog, store, src)
    distinct = {blobs.chunk_id(c) for c in chunk_bytes(body + body, PARAMS)}
    once = {blobs.chunk_id(c) for c in chunk_bytes(body, PARAMS)}
    # body+body may cut differently around the seam, but each distinct chunk goes once.
    assert eng.stats.chunks_new == len(distinct | once) + 4  # + trees: x, y, data, root
    assert catalog.chunk_count() == eng.stats.chunks_new
    stored = sum(len(p) for p in store.packs.values())
    assert stored < len(body) * 1.3  # one copy of the random bytes, not four
    out = tmp_path / "out"
    result = await restorer(blobs, store).run(snapshot, out)
    assert result.failures == []
    assert snapshot_of(out / "data") == snapshot_of(src)


async def test_index_is_split_into_bounded_blobs(tmp_path: Path) -> None:
    src = tmp_path / "data"
    build_many(src, random.Random(5))
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    snapshot, eng = await backup(blobs, catalog, store, src, index_entries=10)
    total = catalog.chunk_count()
    assert total == eng.stats.chunks_new
    assert eng.stats.index_blobs == math.ceil(total / 10) > 10
    assert len(snapshot.index) == eng.stats.index_blobs
    assert catalog.unindexed_count() == 0
    reader = await read_index(blobs, store, snapshot)
    assert len(reader.index) == total
    for locator in snapshot.index:
        assert len(await index_blob_entries(reader, locator)) <= 10
    out = tmp_path / "out"
    result = await restorer(blobs, store).run(snapshot, out)
    assert result.failures == []
    assert snapshot_of(out / "data") == snapshot_of(src)
    assert os.path.isdir(out / "data" / "sub3" / "inner")


async def test_the_last_packs_leave_before_the_index_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the index takes tens of milliseconds with no await in it: the packs
    flushed at the end of the walk must already be on their way by then."""
    src = tmp_path / "data"
    build_many(src, random.Random(6))
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    puts_when_indexing: list[int] = []
    unindexed = Catalog.unindexed_packs

    def note_puts(self: Catalog) -> list[bytes]:
        puts_when_indexing.append(store.puts)
        return unindexed(self)

    monkeypatch.setattr(Catalog, "unindexed_packs", note_puts)
    snapshot, _ = await backup(blobs, catalog, store, src)
    index_packs = len({locator.pack_id for locator in snapshot.index})
    assert puts_when_indexing == [store.puts - index_packs]


async def test_a_file_changed_just_before_a_backup_is_read_again_next_time(
    tmp_path: Path,
) -> None:
    """A write in the same tick of the file system's clock as the state a backup took
    would leave that state as it was; a file that new is saved, not remembered."""
    src = tmp_path / "data"
    build_many(src, random.Random(7))
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    racy = {"racy_seconds": RACY_SECONDS}
    _, first = await backup(blobs, catalog, store, src, **racy)
    _, second = await backup(blobs, catalog, store, src, **racy)
    assert first.stats.files == second.stats.files == FILES
    assert second.stats.files_unchanged == 0 and second.stats.bytes_read == first.stats.bytes
    assert second.stats.chunks_new == 0  # read again, but nothing new to send

    # The same files, once their last change is older than the window, are skipped.
    later = time.time() + RACY_SECONDS + 1
    _, third = await backup(blobs, catalog, store, src, now=lambda: later, **racy)
    _, fourth = await backup(blobs, catalog, store, src, now=lambda: later, **racy)
    assert third.stats.files_unchanged == 0
    assert fourth.stats.files_unchanged == FILES and fourth.stats.bytes_read == 0
