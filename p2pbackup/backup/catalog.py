"""The owner's local catalog: what the mesh already holds, and what files looked like.

A cache, never the source of truth: every row can be rebuilt from the mesh
(the index blobs listed by the snapshots). It exists so a second backup
sends only new chunks and skips unchanged files without reading them. SQLite
in WAL mode; a pack's chunks are committed in one transaction once all its
shares are placed, so a killed backup, run again, resends only what is
missing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cbor2

from p2pbackup.backup.snapshot import Locator

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    chunk_id BLOB PRIMARY KEY,
    pack_id BLOB NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack_id);
CREATE TABLE IF NOT EXISTS packs (
    pack_id BLOB PRIMARY KEY,
    k INTEGER NOT NULL,
    n INTEGER NOT NULL,
    size INTEGER NOT NULL,
    placed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    chunks BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS index_blobs (
    pack_id BLOB NOT NULL,
    offset INTEGER NOT NULL,
    length INTEGER NOT NULL,
    PRIMARY KEY (pack_id, offset)
);
CREATE TABLE IF NOT EXISTS indexed_snapshots (
    snapshot_id BLOB PRIMARY KEY
);
"""


@dataclass(frozen=True, slots=True)
class FileState:
    """What a file looked like when its chunks were last recorded."""

    size: int
    mtime_ns: int
    inode: int


class Catalog:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # ---- chunks and packs ---------------------------------------------

    def locate(self, chunk_id: bytes) -> Locator | None:
        row = self._db.execute(
            "SELECT pack_id, offset, length FROM chunks WHERE chunk_id = ?", (chunk_id,)
        ).fetchone()
        return None if row is None else Locator(row[0], row[1], row[2])

    def has_chunk(self, chunk_id: bytes) -> bool:
        row = self._db.execute("SELECT 1 FROM chunks WHERE chunk_id = ?", (chunk_id,)).fetchone()
        return row is not None

    def record_pack(
        self,
        pack_id: bytes,
        k: int,
        n: int,
        size: int,
        placed: int,
        chunks: Iterable[tuple[bytes, Locator]],
    ) -> None:
        """A pack is in the mesh: remember it and every chunk in it, atomically."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO packs VALUES (?, ?, ?, ?, ?)", (pack_id, k, n, size, placed)
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)",
                ((cid, loc.pack_id, loc.offset, loc.length) for cid, loc in chunks),
            )

    def add_locators(self, entries: Iterable[tuple[bytes, Locator]]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?)",
                ((cid, loc.pack_id, loc.offset, loc.length) for cid, loc in entries),
            )

    def packs(self) -> Iterator[tuple[bytes, int, int, int, int]]:
        yield from self._db.execute("SELECT pack_id, k, n, size, placed FROM packs")

    def chunk_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    # ---- files ---------------------------------------------------------

    def file_chunks(self, path: bytes, state: FileState) -> tuple[tuple[bytes, int], ...] | None:
        """The chunk ids of an unchanged file whose chunks are all known to be in the mesh."""
        row = self._db.execute(
            "SELECT size, mtime_ns, inode, chunks FROM files WHERE path = ?", (path,)
        ).fetchone()
        if row is None or FileState(row[0], row[1], row[2]) != state:
            return None
        chunks = tuple((cid, size) for cid, size in cbor2.loads(row[3]))
        if not all(self.has_chunk(cid) for cid, _ in chunks):
            return None
        return chunks

    def remember_file(
        self, path: bytes, state: FileState, chunks: tuple[tuple[bytes, int], ...]
    ) -> None:
        encoded = cbor2.dumps([[cid, size] for cid, size in chunks])
        self._db.execute(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
            (path, state.size, state.mtime_ns, state.inode, encoded),
        )

    # ---- index blobs -----------------------------------------------------

    def add_index_blob(self, locator: Locator) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO index_blobs VALUES (?, ?, ?)",
            (locator.pack_id, locator.offset, locator.length),
        )

    def index_blobs(self) -> list[Locator]:
        rows = self._db.execute("SELECT pack_id, offset, length FROM index_blobs ORDER BY rowid")
        return [Locator(*row) for row in rows]

    # ---- snapshots whose index blobs are loaded ------------------------

    def is_indexed(self, snapshot_id: bytes) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM indexed_snapshots WHERE snapshot_id = ?", (snapshot_id,)
        ).fetchone()
        return row is not None

    def mark_indexed(self, snapshot_id: bytes) -> None:
        self._db.execute("INSERT OR IGNORE INTO indexed_snapshots VALUES (?)", (snapshot_id,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
