"""Restore with packs missing or damaged: the affected files are reported with a reason
and never left behind half-written or with wrong bytes; everything else is restored."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.backup import restore as restore_module
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.snapshot import Snapshot
from p2pbackup.codec.packstore import MemoryPackStore
from p2pbackup.errors import P2PBackupError
from tests.backup.fs import (
    backup,
    chunks_by_pack,
    codec,
    read_index,
    restorer,
    snapshot_of,
    walk_snapshot,
    write,
)


def build(root: Path) -> None:
    rng = random.Random(7)
    for d in range(3):
        for i in range(8):
            folder = root / f"dir{d}"
            folder.mkdir(parents=True, exist_ok=True)
            write(folder / f"file{i}.bin", rng.randbytes(rng.randrange(2000, 60_000)))
    write(root / "big.bin", rng.randbytes(500_000))
    write(root / "same-size-a", rng.randbytes(900))  # one chunk each, equal sealed sizes
    write(root / "same-size-b", rng.randbytes(900))


async def setup(
    tmp_path: Path, store: MemoryPackStore, pack_target: int = 32 * 1024
) -> tuple[Path, Snapshot]:
    src = tmp_path / "src"
    build(src)
    snapshot, eng = await backup(codec(pack_target), Catalog(tmp_path / "c.db"), store, src)
    assert eng.stats.errors == []
    return src, snapshot


def expect_rest_restored(src: Path, out: Path, failed: set[bytes]) -> None:
    before = {k: v for k, v in snapshot_of(src).items() if v[0] == "file"}
    after = {k: v for k, v in snapshot_of(out / "src").items() if v[0] == "file"}
    assert set(after) == set(before) - failed  # failed files are not left behind at all
    for path, record in after.items():
        assert record == before[path]


async def test_missing_pack_fails_only_its_files(tmp_path: Path) -> None:
    blobs, store = codec(32 * 1024), MemoryPackStore()
    src, snapshot = await setup(tmp_path, store)
    reader = await read_index(blobs, store, snapshot)
    files, trees = await walk_snapshot(reader, snapshot.tree)
    by_pack = chunks_by_pack(reader.index)
    tree_ids = set(trees.values())
    # A data pack that several files (but not all) need, holding no folder list.
    victim = max(
        (p for p, ids in by_pack.items() if not ids & tree_ids),
        key=lambda p: sum(1 for f in files.values() if {c for c, _ in f.chunks} & by_pack[p]),
    )
    affected = {rel for rel, f in files.items() if {c for c, _ in f.chunks} & by_pack[victim]}
    assert 1 < len(affected) < len(files)
    del store.packs[victim]

    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    failed = {os.path.relpath(os.fsencode(p), os.fsencode(out)) for p, _ in stats.failures}
    assert failed == affected
    short = victim.hex()[:12]
    assert {reason for _, reason in stats.failures} == {f"pack {short} is not stored"}
    assert all("not stored" in reason for _, reason in stats.failures)
    assert stats.files_failed == len(affected)
    assert stats.files_restored == len(files) - len(affected)
    expect_rest_restored(src, out, {os.path.relpath(a, b"src") for a in affected})


async def test_missing_folder_list_fails_that_folder_only(tmp_path: Path) -> None:
    blobs, store = codec(1), MemoryPackStore()  # every blob in a pack of its own
    src, snapshot = await setup(tmp_path, store, pack_target=1)
    reader = await read_index(blobs, store, snapshot)
    _, trees = await walk_snapshot(reader, snapshot.tree)
    del store.packs[reader.index[trees[b"src/dir1"]].pack_id]

    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert [os.path.relpath(p, out) for p, _ in stats.failures] == ["src/dir1"]
    assert "folder list unreadable" in stats.failures[0][1]
    assert not (out / "src" / "dir1").exists()
    expect_rest_restored(src, out, {os.fsencode(f"dir1/file{i}.bin") for i in range(8)})

    del store.packs[reader.index[snapshot.tree].pack_id]
    with pytest.raises(P2PBackupError, match="root folder list cannot be read"):
        await restorer(blobs, store).run(snapshot, tmp_path / "out2")


def files_in_pack(files: dict[bytes, Any], index: dict[bytes, Any], pack_id: bytes) -> set[bytes]:
    return {
        rel for rel, f in files.items() if any(index[c].pack_id == pack_id for c, _ in f.chunks)
    }


def failed_paths(stats: Any, out: Path) -> list[bytes]:
    return [os.path.relpath(os.fsencode(p), os.fsencode(out)) for p, _ in stats.failures]


async def test_a_flipped_byte_is_caught_by_the_engines_own_pack_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store that hands back a damaged pack unchecked: the engine checks the pack
    against its id itself, so none of its files is written; and were that check
    passed, each chunk's seal still keeps the damaged one out."""
    blobs = codec(32 * 1024)
    store = MemoryPackStore(verify=False)  # hands back damaged packs as they are
    src, snapshot = await setup(tmp_path, store)
    reader = await read_index(blobs, store, snapshot)
    files, _ = await walk_snapshot(reader, snapshot.tree)
    victim = b"src/dir2/file3.bin"
    locator = reader.index[files[victim].chunks[-1][0]]
    data = bytearray(store.packs[locator.pack_id])
    data[locator.offset + locator.length // 2] ^= 0x01
    store.packs[locator.pack_id] = bytes(data)
    neighbours = files_in_pack(files, reader.index, locator.pack_id)
    assert len(neighbours) > 1  # others share the pack

    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert set(failed_paths(stats, out)) == neighbours
    assert all("corrupted" in reason for _, reason in stats.failures)
    expect_rest_restored(src, out, {os.path.relpath(p, b"src") for p in neighbours})

    # Past the pack check, the chunk's seal fails: only its own file is lost.
    monkeypatch.setattr(restore_module, "pack_is_sound", lambda pack_id, pack: True)
    out2 = tmp_path / "out2"
    stats = await restorer(blobs, store).run(snapshot, out2)
    assert failed_paths(stats, out2) == [victim]
    assert "authentication" in stats.failures[0][1]
    expect_rest_restored(src, out2, {b"dir2/file3.bin"})


async def test_a_valid_blob_under_the_wrong_id_is_never_written(tmp_path: Path) -> None:
    """Swap in another chunk's sealed blob (authentic, same length) where a store does
    not check pack ids: the seal opens, but the pack no longer hashes to its id, so
    none of the pack's files is written."""
    blobs = codec(32 * 1024)
    store = MemoryPackStore(verify=False)
    src, snapshot = await setup(tmp_path, store)
    reader = await read_index(blobs, store, snapshot)
    files, _ = await walk_snapshot(reader, snapshot.tree)
    a = reader.index[files[b"src/same-size-a"].chunks[0][0]]
    b = reader.index[files[b"src/same-size-b"].chunks[0][0]]
    assert a.length == b.length
    blob_b = store.packs[b.pack_id][b.offset : b.offset + b.length]
    data = bytearray(store.packs[a.pack_id])
    data[a.offset : a.offset + a.length] = blob_b
    store.packs[a.pack_id] = bytes(data)
    lost = files_in_pack(files, reader.index, a.pack_id)
    assert b"src/same-size-a" in lost

    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert set(failed_paths(stats, out)) == lost
    assert all("does not hash to its id" in reason for _, reason in stats.failures)
    expect_rest_restored(src, out, {os.path.relpath(p, b"src") for p in lost})


@pytest.mark.parametrize("budget", [0.5, 0.0], ids=["half-way", "first-write"])
async def test_a_full_target_stops_the_restore_and_keeps_only_whole_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: float
) -> None:
    """Out of space, every later write fails too: the restore stops at once with one
    clear error, keeps the files it finished and leaves no file half-written."""
    blobs, store = codec(32 * 1024), MemoryPackStore()
    src, snapshot = await setup(tmp_path, store)
    total = sum(f.stat().st_size for f in src.rglob("*") if f.is_file())
    room = int(total * budget)
    refusals = 0
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        nonlocal room, refusals
        if len(data) > room:
            refusals += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        room -= len(data)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    out = tmp_path / "out"
    # One pack at a time: which files are whole when the space runs out then does not
    # hang on the order trio happens to run parallel pack writes in.
    with pytest.raises(P2PBackupError, match="restore stopped: no space left on device") as err:
        await restorer(blobs, store, parallel_packs=1).run(snapshot, out)
    monkeypatch.undo()
    assert refusals == 1  # it stopped at the first refusal
    kept = {k: v for k, v in snapshot_of(out / "src").items() if v[0] == "file"}
    originals = snapshot_of(src)
    assert all(record == originals[path] for path, record in kept.items())
    whole = sum(1 for v in originals.values() if v[0] == "file")
    assert len(kept) < whole
    assert f"{len(kept)} files were restored" in str(err.value)
    if budget:
        assert kept


async def test_a_full_target_keeps_every_big_file_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files spread over several packs, with room for two of three: the two are kept,
    byte-identical, and counted. Every spread file was removed at a stop, whole or
    not, so a nearly full target kept none of them."""
    blobs, store = codec(32 * 1024), MemoryPackStore()
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(9)
    sizes = {"a.bin": 150_000, "b.bin": 150_000, "c.bin": 150_000}
    for name, size in sizes.items():
        write(src / name, rng.randbytes(size))
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    reader = await read_index(blobs, store, snapshot)
    files, _ = await walk_snapshot(reader, snapshot.tree)
    assert all(
        len({reader.index[c].pack_id for c, _ in files[b"src/" + n.encode()].chunks}) > 1
        for n in sizes
    )  # each spread over several packs
    room = 2 * 150_000 + 40_000  # the first two, and part of the third
    real_pwrite = os.pwrite

    def pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
        nonlocal room
        if len(data) > room:
            raise OSError(errno.ENOSPC, "No space left on device")
        room -= len(data)
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    out = tmp_path / "out"
    with pytest.raises(P2PBackupError, match="2 files were restored before it filled"):
        await restorer(blobs, store, parallel_packs=1).run(snapshot, out)
    monkeypatch.undo()
    kept = {k: v for k, v in snapshot_of(out / "src").items() if v[0] == "file"}
    originals = snapshot_of(src)
    assert sorted(kept) == [b"a.bin", b"b.bin"]  # in order of the snapshot; c.bin gone
    assert all(record == originals[path] for path, record in kept.items())
