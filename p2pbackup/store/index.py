"""The SQLite index of a file share store: one row per share file, so listing, leases
and expiry never read share data, and a row that commits only after its file is
durable is the store's record of what it has acknowledged.

The schema is an on-disk format: version 1 rows (no `merkle` column) keep the flat
digest they were written with and are still checked against it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from p2pbackup.store.contract import ShareInfo, ShareKey, StoredShare

_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
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
CREATE INDEX IF NOT EXISTS shares_by_expiry ON shares (lease_expiry);
"""


class Row(NamedTuple):
    """One share's row: all a put, a get or a check needs without the file."""

    owner: bytes
    size: int
    lease_expiry: int
    stored_at: int
    descriptor: bytes
    digest: bytes
    merkle: int  # 1: `digest` is the Merkle root; 0: a flat BLAKE2b (schema version 1)


class ShareIndex:
    """The `shares` table behind a connection in autocommit mode: each write commits
    as it runs, except inside `transaction`. Callers serialise access themselves."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(shares)")}
            if "merkle" not in columns:  # rows written before version 2 keep a flat digest
                self._db.execute("ALTER TABLE shares ADD COLUMN merkle INTEGER NOT NULL DEFAULT 0")
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            with contextlib.suppress(Exception):
                self._db.close()
            raise

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside commit together or not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def row(self, key: ShareKey) -> Row | None:
        found = self._db.execute(
            "SELECT owner, size, lease_expiry, stored_at, descriptor, digest, merkle "
            "FROM shares WHERE pack_id = ? AND idx = ?",
            key,
        ).fetchone()
        if found is None:
            return None
        owner, size, lease, stored_at, descriptor, digest, merkle = found
        return Row(
            bytes(owner),
            int(size),
            int(lease),
            int(stored_at),
            bytes(descriptor),
            bytes(digest),
            int(merkle),
        )

    def insert(self, share: StoredShare, digest: bytes) -> None:
        """Record a share whose file is durable, replacing any row under its key."""
        self._db.execute(
            "INSERT OR REPLACE INTO shares "
            "(pack_id, idx, size, owner, lease_expiry, stored_at, descriptor, digest, merkle) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (
                share.pack_id,
                share.index,
                len(share.data),
                share.owner,
                share.lease_expiry,
                share.stored_at,
                share.descriptor,
                digest,
            ),
        )

    def extend(self, share: StoredShare) -> None:
        """Give a held share the lease and descriptor of a re-put of it."""
        self._db.execute(
            "UPDATE shares SET descriptor = ?, lease_expiry = ? WHERE pack_id = ? AND idx = ?",
            (share.descriptor, share.lease_expiry, share.pack_id, share.index),
        )

    def delete(self, key: ShareKey) -> int | None:
        """Drop a row; the size it recorded, or None when there was none."""
        found = self._db.execute(
            "DELETE FROM shares WHERE pack_id = ? AND idx = ? RETURNING size", key
        ).fetchone()
        return None if found is None else int(found[0])

    def has(self, key: ShareKey) -> bool:
        found = self._db.execute("SELECT 1 FROM shares WHERE pack_id = ? AND idx = ?", key)
        return found.fetchone() is not None

    def indices(self, pack_id: bytes) -> list[int]:
        rows = self._db.execute(
            "SELECT idx FROM shares WHERE pack_id = ? ORDER BY idx", (pack_id,)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def listing(self) -> list[ShareInfo]:
        """Every row in key order, fetched whole so callers may delete while iterating."""
        rows = self._db.execute(
            "SELECT pack_id, idx, size, lease_expiry FROM shares ORDER BY pack_id, idx"
        ).fetchall()
        return [ShareInfo(bytes(p), int(i), int(s), int(e)) for p, i, s, e in rows]

    def renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None
    ) -> int:
        cursor = self._db.execute(
            "UPDATE shares SET lease_expiry = ?, descriptor = coalesce(?, descriptor) "
            "WHERE pack_id = ? AND owner = ?",
            (lease_expiry, descriptor, pack_id, owner),
        )
        return cursor.rowcount

    def expired(self, now: int) -> list[ShareKey]:
        rows = self._db.execute(
            "SELECT pack_id, idx FROM shares WHERE lease_expiry <= ? "
            "ORDER BY lease_expiry, pack_id, idx",
            (now,),
        ).fetchall()
        return [(bytes(p), int(i)) for p, i in rows]

    def census(self) -> tuple[int, int, int]:
        shares, packs, owners = self._db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT pack_id), COUNT(DISTINCT owner) FROM shares"
        ).fetchone()
        return int(shares), int(packs), int(owners)

    def total_size(self) -> int:
        return int(self._db.execute("SELECT COALESCE(SUM(size), 0) FROM shares").fetchone()[0])
