"""A backup killed by a failing pack store, run again with the same catalog, finishes:
it sends only chunks the first run did not place, and its snapshot restores fully."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
import trio

from p2pbackup.backup.catalog import Catalog, FileState
from p2pbackup.base.offload import to_thread
from p2pbackup.codec.packstore import MemoryPackStore, PackReceipt
from p2pbackup.errors import P2PBackupError
from tests.backup.fs import backup, codec, restorer, snapshot_of, write


class FailingStore:
    """Passes puts to a memory store until `fail_after` have succeeded, then refuses."""

    def __init__(self, inner: MemoryPackStore, fail_after: int | None) -> None:
        self.inner = inner
        self.fail_after = fail_after
        self.put_ids: list[bytes] = []
        self.bytes_put = 0

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        if self.fail_after is not None and len(self.put_ids) >= self.fail_after:
            raise P2PBackupError("no peer has room for this pack")
        receipt = await self.inner.put(pack_id, data)
        self.put_ids.append(pack_id)
        self.bytes_put += len(data)
        return receipt

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        return await self.inner.get(pack_id, size_hint)


def build(root: Path) -> None:
    rng = random.Random(6)
    for i in range(30):
        folder = root / f"d{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        write(folder / f"f{i}", rng.randbytes(rng.randrange(1000, 40_000)))
    write(root / "big", rng.randbytes(400_000))


def state(path: Path) -> FileState:
    st = path.stat()
    return FileState(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def data_bytes(store: FailingStore, catalog: Catalog) -> int:
    index_packs = {loc.pack_id for loc in catalog.index_blobs()}
    return sum(len(store.inner.packs[p]) for p in store.put_ids if p not in index_packs)


async def clean_run(tmp_path: Path, src: Path) -> tuple[int, int]:
    """(data packs, data bytes) of an uninterrupted backup of `src`."""
    catalog = Catalog(tmp_path / "clean.db")
    store = FailingStore(MemoryPackStore(), None)
    await backup(codec(), catalog, store, src)
    data = data_bytes(store, catalog)
    return len(store.put_ids) - len({loc.pack_id for loc in catalog.index_blobs()}), data


@pytest.mark.parametrize("where", ["first-put", "mid-data", "at-index"])
async def test_rerun_finishes_and_sends_only_what_is_missing(tmp_path: Path, where: str) -> None:
    src = tmp_path / "src"
    build(src)
    clean_packs, clean_data = await clean_run(tmp_path, src)
    assert clean_packs > 6
    fail_after = {"first-put": 0, "mid-data": clean_packs // 2, "at-index": clean_packs}[where]

    blobs = codec()
    memory = MemoryPackStore()
    store = FailingStore(memory, fail_after)
    catalog = Catalog(tmp_path / "catalog.db")
    with pytest.raises(P2PBackupError, match="no peer has room"):
        await backup(blobs, catalog, store, src, parallel_uploads=2)
    placed_first = set(catalog.chunk_ids())
    # Files whose chunks all went out before the failure are known not to need a read.
    files = [p for p in src.rglob("*") if p.is_file()]
    known = [p for p in files if catalog.file_chunks(os.fsencode(p), state(p)) is not None]
    if where == "mid-data":
        assert 0 < len(known) < len(files)
    first_puts = list(store.put_ids)
    assert len(first_puts) == fail_after
    assert catalog.index_blobs() == []  # the killed run wrote no index

    store.fail_after = None
    snapshot, eng = await backup(blobs, catalog, store, src, parallel_uploads=2)
    second_puts = store.put_ids[len(first_puts) :]
    # No chunk the first run placed went out again.
    for cid in list(catalog.chunk_ids()):
        located = catalog.locate(cid)
        assert located is not None
        if cid in placed_first:
            assert located.pack_id in first_puts
        else:
            assert located.pack_id in second_puts
    assert eng.stats.chunks_new == len(list(catalog.chunk_ids())) - len(placed_first)
    assert eng.stats.files_unchanged == len(known)
    assert eng.stats.bytes_read == sum(p.stat().st_size for p in files if p not in known)
    # Both runs together sent exactly the data bytes one clean run sends.
    assert data_bytes(store, catalog) == clean_data
    assert catalog.unindexed_count() == 0
    if where == "at-index":
        assert eng.stats.chunks_new == 0 and eng.stats.bytes_read == 0
        assert eng.stats.index_blobs == 1

    out = tmp_path / "out"
    result = await restorer(blobs, memory).run(snapshot, out)
    assert result.failures == []
    assert snapshot_of(out / "src") == snapshot_of(src)


class LastDataFailsLate(MemoryPackStore):
    """Holds the put of pack number `hold` until a later put (the index, written while
    the last data packs are still on their way) is placed, then refuses it."""

    def __init__(self, hold: int) -> None:
        super().__init__()
        self.hold = hold
        self.started = 0
        self.later_placed = trio.Event()
        self.refused: bytes | None = None

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        number, self.started = self.started, self.started + 1
        if number == self.hold:
            await self.later_placed.wait()
            self.refused = pack_id
            raise P2PBackupError("no peer has room for this pack")
        receipt = await super().put(pack_id, data)
        if number > self.hold:
            self.later_placed.set()
        return receipt


async def test_an_index_placed_before_its_data_failed_is_not_recorded(tmp_path: Path) -> None:
    """The index goes out while the last data packs are still being placed. If one of
    those then fails, the index must not count: the rerun indexes every chunk again
    and its snapshot restores."""
    src = tmp_path / "src"
    build(src)
    clean_packs, _ = await clean_run(tmp_path, src)
    blobs, catalog = codec(), Catalog(tmp_path / "catalog.db")
    store = LastDataFailsLate(hold=clean_packs - 1)
    with pytest.raises(P2PBackupError, match="no peer has room"):
        await backup(blobs, catalog, store, src, parallel_uploads=4)
    assert store.refused is not None and store.later_placed.is_set()  # the index went out
    assert catalog.index_blobs() == []
    assert catalog.unindexed_count() == len(list(catalog.chunk_ids())) > 0

    store.hold = -1
    snapshot, eng = await backup(blobs, catalog, store, src)
    assert catalog.unindexed_count() == 0
    assert eng.stats.index_blobs == 1
    result = await restorer(blobs, store).run(snapshot, tmp_path / "out")
    assert result.failures == []
    assert snapshot_of(tmp_path / "out" / "src") == snapshot_of(src)


class CancellingStore(MemoryPackStore):
    """Cancels the backup (as Ctrl-C would) once a few packs are placed."""

    CANCEL_AT = 2
    scope: trio.CancelScope | None = None

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        if self.puts >= self.CANCEL_AT and self.scope is not None:
            self.scope.cancel()
            await trio.sleep_forever()
        return await super().put(pack_id, data)


async def test_cancelled_backup_can_be_run_again(tmp_path: Path) -> None:
    src = tmp_path / "src"
    build(src)
    blobs, store = codec(), CancellingStore()
    catalog = Catalog(tmp_path / "catalog.db")
    with trio.CancelScope() as scope:
        store.scope = scope
        await backup(blobs, catalog, store, src, run_sync=to_thread)
    assert scope.cancelled_caught
    assert store.puts == CancellingStore.CANCEL_AT
    store.scope = None  # the second run goes through
    placed = set(catalog.chunk_ids())
    snapshot, eng = await backup(blobs, catalog, store, src)
    assert eng.stats.chunks_reused >= len(placed)
    result = await restorer(blobs, store).run(snapshot, tmp_path / "out")
    assert result.failures == []
    assert snapshot_of(tmp_path / "out" / "src") == snapshot_of(src)
