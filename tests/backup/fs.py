"""Shared helpers for the backup engine tests: owners, engines, sample trees and tree comparison."""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cbor2
import trio

from p2pbackup.backup.blob_reader import BlobReader, load_index
from p2pbackup.backup.blobs import BlobCodec, ChunkParams
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.backup.restore import RestoreEngine
from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.backup.tree import EntryKind, Tree, TreeEntry
from p2pbackup.codec.packstore import MemoryPackStore, PackStore
from p2pbackup.crypto.keys import OwnerKeys

PARAMS = ChunkParams(min_size=1024, avg_size=4096, max_size=16 * 1024)
PACK_TARGET = 64 * 1024
KEYS = OwnerKeys.from_master(bytes(32))
BASE_NS = 1_600_000_000_123_456_789
NON_UTF8 = b"raw-\xff\xfe-name.bin"


async def inline(fn: Callable[..., Any], *args: Any) -> Any:
    """run_sync as the simulator does it: inline, with a checkpoint."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


def codec(pack_target: int = PACK_TARGET, params: ChunkParams = PARAMS) -> BlobCodec:
    return BlobCodec(KEYS, params, pack_target=pack_target)


def engine(blobs: BlobCodec, catalog: Catalog, store: PackStore, **kwargs: Any) -> BackupEngine:
    kwargs.setdefault("run_sync", inline)
    # Trees here are written just before each backup: only the test of the racy
    # rule keeps the engine from remembering files that new.
    kwargs.setdefault("racy_seconds", 0.0)
    return BackupEngine(blobs, catalog, store, **kwargs)


async def backup(
    blobs: BlobCodec, catalog: Catalog, store: PackStore, *paths: Path, **kwargs: Any
) -> tuple[Snapshot, BackupEngine]:
    eng = engine(blobs, catalog, store, **kwargs)
    snapshot = await eng.run(list(paths), host="test-host")
    return snapshot, eng


async def backed_up(
    tmp_path: Path, build: Callable[[Path], None]
) -> tuple[BlobCodec, MemoryPackStore, Snapshot]:
    """The tree `build` makes in `tmp_path/src`, backed up into a pack store in memory."""
    src = tmp_path / "src"
    build(src)
    blobs, store = codec(), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    return blobs, store, snapshot


def restorer(blobs: BlobCodec, store: PackStore, **kwargs: Any) -> RestoreEngine:
    kwargs.setdefault("run_sync", inline)
    return RestoreEngine(blobs, store, **kwargs)


def build_tree(root: Path, rng: random.Random) -> None:
    """Nested folders, empty files and folders, symlinks, odd names, a few MB of noise."""
    root.mkdir()
    (root / "nested" / "deeper" / "deepest").mkdir(parents=True)
    (root / "empty-dir").mkdir()
    (root / "empty-outer" / "empty-inner").mkdir(parents=True)
    (root / "café").mkdir()
    (root / "locked").mkdir()
    ns = iter(range(BASE_NS, BASE_NS + 10**9, 1_000_003))
    write(root / "a.txt", b"hello\n", mode=0o600, mtime_ns=next(ns))
    write(root / "empty.bin", b"", mode=0o644, mtime_ns=next(ns))
    write(root / "tool.sh", b"#!/bin/sh\necho hi\n", mode=0o755, mtime_ns=next(ns))
    write(root / "big.bin", rng.randbytes(3 * 1024 * 1024 + 123), mtime_ns=next(ns))
    write(root / "café" / "naïve ☃.txt", "naïve ☃\n".encode() * 50, mtime_ns=next(ns))
    write(root / "nested" / "deeper" / "deepest" / "leaf.txt", b"leaf" * 3000, mtime_ns=next(ns))
    write(root / "nested" / "mid.bin", rng.randbytes(40_000), mode=0o640, mtime_ns=next(ns))
    write(root / "locked" / "inside.txt", b"inside", mode=0o400, mtime_ns=next(ns))
    write(os.path.join(os.fsencode(root), NON_UTF8), b"bytes name", mtime_ns=next(ns))
    os.symlink("a.txt", root / "link-rel")
    os.symlink("../nowhere/at/all", root / "nested" / "link-dangling")
    for link in (root / "link-rel", root / "nested" / "link-dangling"):
        stamp = next(ns)
        os.utime(link, ns=(stamp, stamp), follow_symlinks=False)
    # Folder modes and mtimes last, deepest first, as creating entries changes them.
    folders = sorted(
        (Path(d) for d, _, _ in os.walk(root)), key=lambda p: len(p.parts), reverse=True
    )
    for folder in folders:
        stamp = next(ns)
        os.utime(folder, ns=(stamp, stamp))
    os.chmod(root / "locked", 0o500)
    os.chmod(root / "empty-outer", 0o750)


def rand_bytes(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def write(
    path: Path | bytes, data: bytes, *, mode: int | None = None, mtime_ns: int | None = None
) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
    if mode is not None:
        os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def snapshot_of(root: Path | bytes) -> dict[bytes, tuple[Any, ...]]:
    """Everything a restore must reproduce, keyed by path relative to `root`:
    kind, permission bits, mtime in ns, and content or symlink target."""
    base = os.fsencode(root)
    out: dict[bytes, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", st.st_mtime_ns, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                with open(full, "rb") as handle:
                    content = handle.read()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, content)
    return out


async def read_index(blobs: BlobCodec, store: PackStore, snapshot: Snapshot) -> BlobReader:
    reader = BlobReader(blobs, store, {})
    reader.index = await load_index(reader, snapshot.index)
    return reader


async def walk_snapshot(
    reader: BlobReader, tree_id: bytes, relative: bytes = b""
) -> tuple[dict[bytes, TreeEntry], dict[bytes, bytes]]:
    """(files by relative path, tree ids by the folder's relative path; b"" is the root)."""
    files: dict[bytes, TreeEntry] = {}
    trees: dict[bytes, bytes] = {relative: tree_id}
    tree = Tree.decode(await reader.blob(tree_id))
    for entry in tree.entries:
        rel = os.path.join(relative, entry.name)
        if entry.kind is EntryKind.DIR:
            assert entry.subtree is not None
            sub_files, sub_trees = await walk_snapshot(reader, entry.subtree, rel)
            files.update(sub_files)
            trees.update(sub_trees)
        elif entry.kind is EntryKind.FILE:
            files[rel] = entry
    return files, trees


def chunks_by_pack(index: dict[bytes, Locator]) -> dict[bytes, set[bytes]]:
    out: dict[bytes, set[bytes]] = {}
    for chunk_id, locator in index.items():
        out.setdefault(locator.pack_id, set()).add(chunk_id)
    return out


async def index_blob_entries(reader: BlobReader, locator: Locator) -> dict[bytes, Any]:
    raw = cbor2.loads(await reader.at(locator, None))
    assert isinstance(raw, dict)
    return raw
