"""Sealed snapshot records, and the catalog's state across a reopen."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from p2pbackup.backup.catalog import Catalog, FileState
from p2pbackup.backup.snapshot import Locator, Snapshot, open_snapshot, seal_snapshot
from p2pbackup.codec.packstore import MemoryPackStore
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from tests.backup.fs import KEYS, backup, codec, restorer, snapshot_of, write


def sample() -> Snapshot:
    return Snapshot(
        snapshot_id=bytes(range(16)),
        time=1_700_000_000.25,
        host="laptöp",
        paths=("/home/a/Documents", "/home/a/café"),
        tags=("daily", "☃"),
        parent=bytes(16),
        tree=bytes([7]) * 32,
        index=(Locator(bytes([1]) * 20, 0, 100), Locator(bytes([2]) * 20, 100, 5)),
        files=12,
        size=34_567,
    )


def test_snapshot_seal_open_round_trip() -> None:
    snapshot = sample()
    sealed = seal_snapshot(snapshot, KEYS.snapshot_key)
    assert "laptöp".encode() not in sealed  # hosts are not in clear
    assert open_snapshot(sealed, KEYS.snapshot_key) == snapshot
    root = Snapshot(**{**sample().__dict__, "parent": None, "tags": (), "index": ()})
    assert open_snapshot(seal_snapshot(root, KEYS.snapshot_key), KEYS.snapshot_key) == root


def test_snapshot_refuses_wrong_key_and_tampering() -> None:
    sealed = seal_snapshot(sample(), KEYS.snapshot_key)
    other = OwnerKeys.from_master(bytes([9]) * 32)
    with pytest.raises(P2PBackupError, match="does not decrypt"):
        open_snapshot(sealed, other.snapshot_key)
    with pytest.raises(P2PBackupError):
        open_snapshot(sealed[:-1] + bytes([sealed[-1] ^ 1]), KEYS.snapshot_key)
    with pytest.raises(P2PBackupError):
        open_snapshot(seal_snapshot(sample(), KEYS.data_key), KEYS.snapshot_key)


async def test_catalog_state_survives_reopen(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    rng = random.Random(8)
    for i in range(20):
        write(src / "d" / f"f{i}", rng.randbytes(rng.randrange(10, 20_000)))
    blobs, store = codec(), MemoryPackStore()
    path = tmp_path / "catalog.db"
    catalog = Catalog(path)
    first, eng = await backup(blobs, catalog, store, src)
    chunks = sorted(catalog.chunk_ids())
    packs = sorted(catalog.packs())
    blobs_listed = catalog.index_blobs()
    catalog.mark_indexed(first.snapshot_id)
    catalog.close()

    reopened = Catalog(path)
    assert sorted(reopened.chunk_ids()) == chunks and len(chunks) == eng.stats.chunks_new
    assert sorted(reopened.packs()) == packs
    assert reopened.index_blobs() == blobs_listed == list(first.index)
    assert reopened.unindexed_count() == 0
    assert reopened.is_indexed(first.snapshot_id)
    for cid in chunks:
        assert reopened.locate(cid) is not None

    second, eng2 = await backup(blobs, reopened, store, src)
    assert eng2.stats.bytes_read == 0 and eng2.stats.files_unchanged == 20
    assert eng2.stats.chunks_new == 0 and eng2.stats.packs == 0
    assert second.tree == first.tree
    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(second, out)
    assert stats.failures == []
    assert snapshot_of(out / "src") == snapshot_of(src)


def _older_catalog(path: Path, schema: str) -> sqlite3.Connection:
    """A catalog file as an earlier version left it; the caller fills and closes it."""
    db = sqlite3.connect(path)
    db.executescript(schema)
    return db


def test_catalog_from_before_ctime_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _older_catalog(
        path,
        "CREATE TABLE files (path BLOB PRIMARY KEY, size INTEGER NOT NULL, "
        "mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, chunks BLOB NOT NULL)",
    ).close()
    catalog = Catalog(path)
    state = FileState(5, 6, 7, 8)
    cid = bytes(32)
    catalog.record_pack(bytes(20), 1, 1, 10, 1, [(cid, Locator(bytes(20), 0, 10))])
    catalog.remember_file(b"/x", state, ((cid, 5),))
    assert catalog.file_chunks(b"/x", state) == ((cid, 5),)
    assert catalog.file_chunks(b"/x", FileState(5, 6, 7, 9)) is None


def test_catalog_that_listed_unindexed_chunks_marks_their_packs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = _older_catalog(
        path,
        "CREATE TABLE chunks (chunk_id BLOB PRIMARY KEY, pack_id BLOB NOT NULL, "
        "offset INTEGER NOT NULL, length INTEGER NOT NULL);"
        "CREATE TABLE packs (pack_id BLOB PRIMARY KEY, k INTEGER NOT NULL, "
        "n INTEGER NOT NULL, size INTEGER NOT NULL, placed INTEGER NOT NULL);"
        "CREATE TABLE unindexed (chunk_id BLOB PRIMARY KEY);",
    )
    indexed, half = b"i" * 32, b"h" * 32
    rows = [(bytes([n]) * 32, pack, n * 10, 10) for n, pack in enumerate([indexed, half, half])]
    db.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO packs VALUES (?, 3, 10, 30, 10)", [(indexed,), (half,)])
    db.execute("INSERT INTO unindexed VALUES (?)", (rows[2][0],))  # one of `half`'s two
    db.commit()
    db.close()

    catalog = Catalog(path)
    # The whole pack is listed again: an index entry twice costs nothing, one missing
    # would leave a chunk no restore can find.
    assert catalog.unindexed_packs() == [half]
    assert catalog.unindexed_count() == 2
    assert sorted(catalog.pack_chunks(half)) == [
        (rows[1][0], Locator(half, 10, 10)),
        (rows[2][0], Locator(half, 20, 10)),
    ]
    catalog.close()
    assert Catalog(path).unindexed_packs() == [half]  # upgraded once, still marked


def test_catalog_says_how_long_a_placed_packs_shares_are(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")
    catalog.record_pack(b"p" * 20, 3, 10, 6 * 1024 * 1024 + 1, 9, [])
    assert catalog.share_bytes(b"p" * 20) == 2 * 1024 * 1024 + 1  # rounded up
    assert catalog.share_bytes(b"q" * 20) is None  # a pack it never placed
