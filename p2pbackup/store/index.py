"""The SQLite index of a file share store: one row per share file, so listing, leases
and expiry never read share data, and a row that commits only after its file is
durable is the store's record of what it has acknowledged.

The schema is an on-disk format. Version 1 rows (no `merkle` column) keep the flat
digest they were written with and are still checked against it. Version 3 keys a
row by owner as well as pack id and index, so two owners' shares under one pack
id coexist; an older table is rebuilt in one transaction when the store opens, so
a kill at any point leaves either the old table or the new one, never half of each.
Version 4 records the length of the header a share file starts with (0 for a file
written before headers), added in one transaction the same way.

`synchronous=FULL`: in WAL mode a commit returns only once the log is synced, so a
row, the store's promise that a share is held, survives a power cut the moment it
commits. NORMAL would sync only at checkpoints, and a row the owner was told of
could roll back (decision 0027).

Lookups of single rows (`row`, `has`, `indices`) go through a second connection
that only reads: WAL lets it read the last committed state while the writing one
syncs a commit, so a put or an audit does not wait for another share's commit
(decision 0057). Everything else goes through the writing connection, one caller
at a time (`writing`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from p2pbackup.base.sqlite import write_transaction
from p2pbackup.store.admission import tree_of
from p2pbackup.store.contract import ShareInfo, ShareKey, StoredShare
from p2pbackup.store.sqlite_open import open_wal

SCHEMA_VERSION = 4
_TABLE = """
CREATE TABLE {name} (
    pack_id BLOB NOT NULL,
    idx INTEGER NOT NULL,
    owner BLOB NOT NULL,
    size INTEGER NOT NULL,
    lease_expiry INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    descriptor BLOB NOT NULL,
    digest BLOB NOT NULL,
    merkle INTEGER NOT NULL DEFAULT 0,
    header INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pack_id, idx, owner)
) WITHOUT ROWID
"""
_EXPIRY_INDEX = "CREATE INDEX shares_by_expiry ON shares (lease_expiry)"
_COLUMNS = "pack_id, idx, owner, size, lease_expiry, stored_at, descriptor, digest, merkle"
_SYNC_MODES = ("FULL", "NORMAL")
_KEY = "pack_id = ? AND idx = ? AND owner = ?"


class Row(NamedTuple):
    """One share's row: all a put, a get or a check needs without the file."""

    size: int
    lease_expiry: int
    stored_at: int
    descriptor: bytes
    digest: bytes
    # `digest` is the root of share tree `merkle` (1: BLAKE2b, 2: BLAKE3); 0: a flat
    # BLAKE2b (schema version 1).
    merkle: int
    header: int  # bytes before the share's data in its file (0: written before headers)


class _Ran(NamedTuple):
    rows: list[Any]
    rowcount: int


class ShareIndex:
    """The `shares` table behind a connection in autocommit mode: each write commits
    as it runs, except inside `transaction`. Safe to call from any thread: writes take
    `writing`, single-row lookups a reading connection of their own."""

    def __init__(self, path: Path, *, _sync: str = "FULL") -> None:
        # `_sync` exists so the benchmark can measure what FULL costs against NORMAL.
        if _sync not in _SYNC_MODES:
            raise ValueError(f"synchronous mode must be one of {_SYNC_MODES}, got {_sync!r}")
        self.writing = threading.RLock()  # held through a transaction, its sync included
        self._reading = threading.Lock()
        self._db = open_wal(path, "share index", "the share files")
        try:
            self._db.execute(f"PRAGMA synchronous={_sync}")
            self._open_schema()
            self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._reader.execute("PRAGMA query_only=1")
        except BaseException:
            with contextlib.suppress(Exception):
                self._db.close()
            raise

    def _open_schema(self) -> None:
        """Create the table, or bring an older one up to this version."""
        columns = {row[1]: row[5] for row in self._db.execute("PRAGMA table_info(shares)")}
        if not columns:
            with self.transaction():
                self._db.execute(_TABLE.format(name="shares"))
                self._db.execute(_EXPIRY_INDEX)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        if columns.get("owner"):  # the owner is part of the key: version 3 already
            self._add_header_column(columns)
            return
        with self.transaction():
            # Rows written before version 2 keep a flat digest: merkle 0.
            merkle = "merkle" if "merkle" in columns else "0"
            self._db.execute(_TABLE.format(name="shares_v3"))
            self._db.execute(
                f"INSERT INTO shares_v3 ({_COLUMNS}) SELECT pack_id, idx, owner, size, "
                f"lease_expiry, stored_at, descriptor, digest, {merkle} FROM shares"
            )
            self._db.execute("DROP TABLE shares")
            self._db.execute("ALTER TABLE shares_v3 RENAME TO shares")
            self._db.execute(_EXPIRY_INDEX)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _add_header_column(self, columns: dict[str, int]) -> None:
        """Version 3 to 4: every existing file is headerless, so 0 is right for each."""
        if "header" in columns:
            return
        with self.transaction():
            self._db.execute("ALTER TABLE shares ADD COLUMN header INTEGER NOT NULL DEFAULT 0")
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self.writing, self._reading:
            self._reader.close()
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes inside commit together or not at all."""
        with self.writing, write_transaction(self._db):
            yield

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> _Ran:
        """One statement on the writing connection, its rows fetched whole."""
        with self.writing:
            cursor = self._db.execute(sql, args)
            return _Ran(cursor.fetchall(), cursor.rowcount)

    def _read(self, sql: str, args: tuple[object, ...]) -> list[Any]:
        """Rows of a query on the reading connection, fetched whole so its read
        transaction ends here and the next sees every commit since."""
        with self._reading:
            return self._reader.execute(sql, args).fetchall()

    def row(self, key: ShareKey) -> Row | None:
        """The committed row; never waits for a commit under way."""
        found = self._read(
            f"SELECT size, lease_expiry, stored_at, descriptor, digest, merkle, header "
            f"FROM shares WHERE {_KEY}",
            key,
        )
        if not found:
            return None
        size, lease, stored_at, descriptor, digest, merkle, header = found[0]
        return Row(
            int(size),
            int(lease),
            int(stored_at),
            bytes(descriptor),
            bytes(digest),
            int(merkle),
            int(header),
        )

    def insert(self, share: StoredShare, digest: bytes, header: int) -> None:
        """Record a share whose file is durable, replacing any row under its key."""
        self._run(
            f"INSERT OR REPLACE INTO shares ({_COLUMNS}, header) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                share.pack_id,
                share.index,
                share.owner,
                len(share.data),
                share.lease_expiry,
                share.stored_at,
                share.descriptor,
                digest,
                tree_of(share.descriptor),
                header,
            ),
        )

    def extend(self, share: StoredShare) -> None:
        """Give a held share the lease and descriptor of a re-put of it."""
        self._run(
            f"UPDATE shares SET descriptor = ?, lease_expiry = ? WHERE {_KEY}",
            (share.descriptor, share.lease_expiry, share.pack_id, share.index, share.owner),
        )

    def set_header(self, key: ShareKey, header: int) -> None:
        """Record the header length of a share file written again in place."""
        self._run(f"UPDATE shares SET header = ? WHERE {_KEY}", (header, *key))

    def delete(self, key: ShareKey) -> int | None:
        """Drop a row; the size it recorded, or None when there was none."""
        found = self._run(f"DELETE FROM shares WHERE {_KEY} RETURNING size", key).rows
        return int(found[0][0]) if found else None

    def has(self, key: ShareKey) -> bool:
        return bool(self._read(f"SELECT 1 FROM shares WHERE {_KEY}", key))

    def indices(self, pack_id: bytes, owner: bytes | None) -> list[int]:
        rows = self._read(
            "SELECT idx FROM shares WHERE pack_id = ? AND (? IS NULL OR owner = ?) ORDER BY idx",
            (pack_id, owner, owner),
        )
        return [int(r[0]) for r in rows]

    def owners_of(self, pack_id: bytes, index: int) -> list[bytes]:
        """Whose shares are held under (pack id, index)."""
        rows = self._run(
            "SELECT owner FROM shares WHERE pack_id = ? AND idx = ? ORDER BY owner",
            (pack_id, index),
        ).rows
        return [bytes(r[0]) for r in rows]

    def file_sizes(self) -> dict[ShareKey, int]:
        """Each row's key and the size its file must have: header plus share."""
        rows = self._run("SELECT pack_id, idx, owner, size + header FROM shares")
        return {ShareKey(bytes(p), int(i), bytes(o)): int(s) for p, i, o, s in rows.rows}

    def listing(self) -> list[ShareInfo]:
        """Every row in key order, fetched whole so callers may delete while iterating."""
        rows = self._run(
            "SELECT pack_id, idx, size, lease_expiry, owner FROM shares "
            "ORDER BY pack_id, idx, owner"
        ).rows
        return [ShareInfo(bytes(p), int(i), int(s), int(e), bytes(o)) for p, i, s, e, o in rows]

    def renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None
    ) -> int:
        cursor = self._run(
            "UPDATE shares SET lease_expiry = ?, descriptor = coalesce(?, descriptor) "
            "WHERE pack_id = ? AND owner = ?",
            (lease_expiry, descriptor, pack_id, owner),
        )
        return cursor.rowcount

    def expired(self, now: int) -> list[ShareKey]:
        rows = self._run(
            "SELECT pack_id, idx, owner FROM shares WHERE lease_expiry <= ? "
            "ORDER BY lease_expiry, pack_id, idx, owner",
            (now,),
        ).rows
        return [ShareKey(bytes(p), int(i), bytes(o)) for p, i, o in rows]

    def census(self) -> tuple[int, int, int]:
        shares, packs, owners = self._run(
            "SELECT COUNT(*), COUNT(DISTINCT pack_id), COUNT(DISTINCT owner) FROM shares"
        ).rows[0]
        return int(shares), int(packs), int(owners)

    def usage(self) -> dict[bytes, int]:
        """Bytes held per owner."""
        rows = self._run("SELECT owner, SUM(size) FROM shares GROUP BY owner").rows
        return {bytes(o): int(s) for o, s in rows}
