"""A backup restored into a new folder is the same tree: bytes, names, modes, mtimes, links."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from p2pbackup.backup.catalog import Catalog
from p2pbackup.base.offload import to_thread
from p2pbackup.codec.packstore import MemoryPackStore
from p2pbackup.errors import P2PBackupError
from tests.backup.fs import (
    BASE_NS,
    NON_UTF8,
    backup,
    build_tree,
    chunks_by_pack,
    codec,
    read_index,
    restorer,
    snapshot_of,
    walk_snapshot,
    write,
)


@pytest.mark.parametrize("threads", [False, True], ids=["inline", "threads"])
async def test_round_trip_is_identical(tmp_path: Path, threads: bool) -> None:
    src = tmp_path / "src"
    build_tree(src, random.Random(1))
    blobs = codec()
    store = MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    kwargs = {"run_sync": to_thread} if threads else {}
    snapshot, eng = await backup(blobs, catalog, store, src, **kwargs)
    assert eng.stats.errors == []
    assert eng.stats.files == 9
    assert snapshot.files == 9
    assert snapshot.paths == (str(src),)
    assert store.puts == eng.stats.packs > 1

    out = tmp_path / "out"
    stats = await restorer(blobs, store, **kwargs).run(snapshot, out)
    assert stats.failures == []
    assert stats.files_restored == 9
    assert stats.symlinks == 2
    restored = snapshot_of(out / "src")
    assert restored == snapshot_of(src)
    # The things most likely to go missing, stated outright.
    assert os.fsencode("café/naïve ☃.txt") in restored
    assert NON_UTF8 in restored
    assert restored[b"empty-outer/empty-inner"][0] == "dir"
    assert restored[b"link-rel"][2] == b"a.txt"
    assert restored[b"locked"][1] == 0o500
    assert os.stat(out / "src").st_mtime_ns == os.stat(src).st_mtime_ns


async def test_folder_lists_are_packed_apart_from_file_data(tmp_path: Path) -> None:
    """A restore or `ls` reads every folder list first: those must not make it fetch
    the packs of file data they would otherwise be scattered through."""
    src = tmp_path / "src"
    build_tree(src, random.Random(2))
    blobs, store = codec(), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    reader = await read_index(blobs, store, snapshot)
    files, trees = await walk_snapshot(reader, snapshot.tree)
    tree_ids = {*trees.values(), snapshot.tree}
    data_ids = {cid for f in files.values() for cid, _ in f.chunks}
    packs = chunks_by_pack(reader.index)
    tree_packs = {p for p, ids in packs.items() if ids & tree_ids}
    data_packs = {p for p, ids in packs.items() if ids & data_ids}
    assert len(tree_packs) == 1 and len(data_packs) > 1
    assert not tree_packs & data_packs


async def test_restore_over_old_files_and_symlinks_writes_no_further(tmp_path: Path) -> None:
    """A target left by an earlier restore, with symlinks where files go: every file
    is replaced in place (whole in one pack, spread over several, or empty), each
    longer old file is cut to size, and nothing is written through a link."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "small.txt", b"small", mtime_ns=BASE_NS)
    write(src / "big.bin", random.Random(3).randbytes(300_000), mtime_ns=BASE_NS + 1)
    write(src / "empty", b"", mtime_ns=BASE_NS + 2)
    blobs, store = codec(), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)

    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    (out / "src").mkdir(parents=True)
    for name in ("small.txt", "big.bin", "empty"):
        write(outside / name, b"not to be touched")
        os.symlink(outside / name, out / "src" / name)
    stats = await restorer(blobs, store).run(snapshot, out)
    assert stats.failures == []
    assert snapshot_of(out / "src") == snapshot_of(src)
    assert all((outside / n).read_bytes() == b"not to be touched" for n in os.listdir(outside))

    write(out / "src" / "small.txt", b"a much longer file left from before" * 100)
    stats = await restorer(blobs, store).run(snapshot, out)
    assert stats.failures == []
    assert snapshot_of(out / "src") == snapshot_of(src)


async def test_several_paths_and_a_single_file(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    write(tmp_path / "one" / "x", b"x" * 5000, mtime_ns=BASE_NS)
    write(tmp_path / "loose.txt", b"loose", mode=0o604, mtime_ns=BASE_NS + 7)
    blobs, store = codec(), MemoryPackStore()
    snapshot, _ = await backup(
        blobs, Catalog(tmp_path / "c.db"), store, tmp_path / "one", tmp_path / "loose.txt"
    )
    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert stats.failures == []
    assert snapshot_of(out) == {
        **{b"one/" + k: v for k, v in snapshot_of(tmp_path / "one").items()},
        b"one": snapshot_of(tmp_path)[b"one"],
        b"loose.txt": snapshot_of(tmp_path)[b"loose.txt"],
    }


async def test_bad_paths_are_refused(tmp_path: Path) -> None:
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "c.db")
    with pytest.raises(P2PBackupError, match="does not exist"):
        await backup(blobs, catalog, store, tmp_path / "missing")
    (tmp_path / "a" / "x").mkdir(parents=True)
    (tmp_path / "b" / "x").mkdir(parents=True)
    with pytest.raises(P2PBackupError, match="share a final name"):
        await backup(blobs, catalog, store, tmp_path / "a" / "x", tmp_path / "b" / "x")
    assert store.puts == 0


async def test_a_seeded_engine_names_its_snapshot_the_same_each_time(tmp_path: Path) -> None:
    """Snapshot ids come from the randomness the engine is given, so a seeded run replays."""
    write(tmp_path / "a.txt", b"same", mtime_ns=BASE_NS)
    ids = []
    for run in range(2):
        snapshot, _ = await backup(
            codec(),
            Catalog(tmp_path / f"c{run}.db"),
            MemoryPackStore(),
            tmp_path / "a.txt",
            random_bytes=random.Random(11).randbytes,
            now=lambda: 1_700_000_000.0,
        )
        ids.append(snapshot.snapshot_id)
    assert ids == [random.Random(11).randbytes(16)] * 2
