"""Opening a share store written before shares were keyed by owner: the index is
rebuilt with the owner in its key and every file renamed to carry its owner, and a
stop at any point of that leaves a store the next open finishes and serves in full."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from p2pbackup.codec.erasure import TREE_BLAKE2B
from p2pbackup.store import FileShareStore, ShareKey, index, recovery
from p2pbackup.store.admission import digest_of
from p2pbackup.store.layout import legacy_path_of
from tests.store.helpers import OWNER_A, OWNER_B, pack

# The index as schema version 2 wrote it: one row per (pack id, index), whoever the owner.
_V2_SCHEMA = """
CREATE TABLE shares (
    pack_id BLOB NOT NULL,
    idx INTEGER NOT NULL,
    size INTEGER NOT NULL,
    owner BLOB NOT NULL,
    lease_expiry INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    descriptor BLOB NOT NULL,
    digest BLOB NOT NULL,
    merkle INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pack_id, idx)
) WITHOUT ROWID;
CREATE INDEX shares_by_expiry ON shares (lease_expiry);
PRAGMA user_version = 2;
"""
SHARES = {
    ShareKey(pack(n), n % 3, OWNER_A if n % 2 else OWNER_B): b"share %d" % n for n in range(8)
}


def old_root(data: bytes) -> bytes:
    """Version 2 stores hold roots of BLAKE2b trees (all there was then)."""
    return digest_of(data, TREE_BLAKE2B)


def old_store(root: Path) -> None:
    """A version 2 store holding `SHARES`, files named by pack id and index alone, plus
    a file without a row (an orphan of a cut put) that opening must still delete."""
    shares_dir = root / "shares"
    db = sqlite3.connect(root / "index.sqlite3")
    db.executescript(_V2_SCHEMA)
    for key, data in SHARES.items():
        path = legacy_path_of(shares_dir, key.pack_id, key.idx)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        db.execute(
            "INSERT INTO shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                key.pack_id,
                key.idx,
                len(data),
                key.owner,
                100,
                1,
                b"desc",
                digest_of(data, TREE_BLAKE2B),
            ),
        )
    db.commit()
    db.close()
    orphan = legacy_path_of(shares_dir, pack(99), 0)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"never acknowledged")


def assert_migrated(root: Path) -> None:
    with FileShareStore(root, 10_000) as store:
        for key, data in SHARES.items():
            got = store.get(*key)
            assert got is not None and got.data == data, key
            other = OWNER_B if key.owner == OWNER_A else OWNER_A
            assert store.get(key.pack_id, key.idx, other) is None
        assert store.used_bytes == sum(len(d) for d in SHARES.values())
        mine = sum(len(d) for k, d in SHARES.items() if k.owner == OWNER_A)
        assert store.owner_used(OWNER_A) == mine
        files = sorted(p for p in (root / "shares").rglob("*") if p.is_file())
        assert files == sorted(store.path_of(*key) for key in SHARES)
    db = sqlite3.connect(root / "index.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == index.SCHEMA_VERSION == 4
    db.close()


def test_an_old_store_is_migrated_on_open(tmp_path: Path) -> None:
    old_store(tmp_path)
    assert_migrated(tmp_path)
    assert_migrated(tmp_path)  # a second open finds nothing left to do
    with FileShareStore(tmp_path, 10_000) as store:
        # The old key no longer binds: another owner's share under a held key fits beside it.
        key = ShareKey(pack(1), 1, OWNER_B)
        assert SHARES.get(key) is None and (key._replace(owner=OWNER_A)) in SHARES
        store.put(key.pack_id, key.idx, b"beside", b"d", key.owner, 9, 0)
        assert store.get(*key) is not None and store.get(pack(1), 1, OWNER_A) is not None


@pytest.mark.parametrize("renames_before_the_stop", [0, 1, 5])
def test_a_stop_while_files_are_renamed_is_finished_by_the_next_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renames_before_the_stop: int
) -> None:
    """The index is migrated, then the process dies after some renames: the next open
    renames the rest and loses nothing."""
    old_store(tmp_path)
    done = 0
    rename = recovery.os.rename

    def stopping_rename(source: Path, target: Path) -> None:
        nonlocal done
        if done == renames_before_the_stop:
            raise KeyboardInterrupt  # the process is gone: nothing after this runs
        done += 1
        rename(source, target)

    monkeypatch.setattr(recovery.os, "rename", stopping_rename)
    with pytest.raises(KeyboardInterrupt):
        FileShareStore(tmp_path, 10_000)
    monkeypatch.undo()
    assert_migrated(tmp_path)


def test_a_stop_inside_the_index_migration_leaves_the_old_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table is rebuilt in one transaction: a failure after the old table was dropped
    rolls all of it back, and the next open migrates from the old index as if new."""
    old_store(tmp_path)
    monkeypatch.setattr(index, "_EXPIRY_INDEX", "CREATE INDEX broken ON nowhere (x)")
    with pytest.raises(sqlite3.OperationalError):
        FileShareStore(tmp_path, 10_000)
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM shares").fetchone()[0] == len(SHARES)
    db.close()
    monkeypatch.undo()
    assert_migrated(tmp_path)


def test_a_version_3_index_gains_the_header_column_and_serves_bare_files(tmp_path: Path) -> None:
    """Files written before headers keep working through their rows (header 0)."""
    with FileShareStore(tmp_path, 10_000) as store:
        store.put(pack(1), 0, b"bare share", b"d", OWNER_A, 10, 0)
        store.path_of(pack(1), 0, OWNER_A).write_bytes(b"bare share")
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    db.executescript("ALTER TABLE shares DROP COLUMN header; PRAGMA user_version = 3;")
    db.close()
    with FileShareStore(tmp_path, 10_000) as store:
        got = store.get(pack(1), 0, OWNER_A)
        assert got is not None and got.data == b"bare share"
        assert store.stats()["recovered_orphans_deleted"] == 0
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 4
    assert db.execute("SELECT header FROM shares").fetchall() == [(0,)]
    db.close()
