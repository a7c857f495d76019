"""The owner's local catalog: what the mesh already holds, and what files looked like.

A cache, never the source of truth: every row can be rebuilt from the mesh
(the index blobs listed by the snapshots). It exists so a second backup
sends only new chunks and skips unchanged files without reading them. SQLite
in WAL mode; a pack's chunks are committed in one transaction once all its
shares are placed, so a killed backup, run again, resends only what is
missing.

A placed chunk is also listed as *unindexed* until an index blob naming it is
itself placed. A snapshot can only be restored from chunks some index blob
lists, so a backup writes index blobs for every unindexed chunk, including
those a killed earlier run placed but never got to index.
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
    chunks BLOB NOT NULL,
    ctime_ns INTEGER NOT NULL DEFAULT 0
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
CREATE TABLE IF NOT EXISTS unindexed (
    chunk_id BLOB PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS released (
    pack_id BLOB PRIMARY KEY
);
"""


ChunkList = tuple[tuple[bytes, int], ...]
# Ids bound in one query: well under SQLite's limit on host parameters.
QUERY_BATCH = 500


def _batches(items: list[bytes]) -> Iterator[list[bytes]]:
    for start in range(0, len(items), QUERY_BATCH):
        yield items[start : start + QUERY_BATCH]


@dataclass(frozen=True, slots=True)
class FileState:
    """What a file looked like when its chunks were last recorded. The ctime catches
    a rewrite that kept the size and put the old mtime back."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int = 0


class Catalog:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
        if "ctime_ns" not in columns:  # a catalog written before files kept their ctime
            self._db.execute("ALTER TABLE files ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0")

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

    def known_chunks(self, chunk_ids: Iterable[bytes]) -> set[bytes]:
        """Which of `chunk_ids` the mesh holds: one query per few hundred ids, since a
        query per chunk costs more than the lookup itself on a folder of small files."""
        found: set[bytes] = set()
        for batch in _batches(list(set(chunk_ids))):
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT chunk_id FROM chunks WHERE chunk_id IN ({marks})", batch
            )
            found.update(row[0] for row in rows)
        return found

    def record_pack(
        self,
        pack_id: bytes,
        k: int,
        n: int,
        size: int,
        placed: int,
        chunks: Iterable[tuple[bytes, Locator]],
    ) -> None:
        """A pack is in the mesh: remember it and every chunk in it, atomically. Its chunks
        stay unindexed until `record_index_pack` names them."""
        rows = [(cid, loc.pack_id, loc.offset, loc.length) for cid, loc in chunks]
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO packs VALUES (?, ?, ?, ?, ?)", (pack_id, k, n, size, placed)
            )
            self._db.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", rows)
            self._db.executemany(
                "INSERT OR IGNORE INTO unindexed VALUES (?)", ((row[0],) for row in rows)
            )

    def unindexed(self, after: bytes, limit: int) -> list[tuple[bytes, Locator]]:
        """Up to `limit` placed chunks no placed index blob lists yet, in chunk id order
        from just after `after` (pass b"" to start)."""
        rows = self._db.execute(
            "SELECT u.chunk_id, c.pack_id, c.offset, c.length FROM unindexed u "
            "JOIN chunks c ON c.chunk_id = u.chunk_id "
            "WHERE u.chunk_id > ? ORDER BY u.chunk_id LIMIT ?",
            (after, limit),
        )
        return [(row[0], Locator(row[1], row[2], row[3])) for row in rows]

    def unindexed_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM unindexed").fetchone()[0])

    def record_index_pack(
        self,
        pack_id: bytes,
        k: int,
        n: int,
        size: int,
        placed: int,
        blobs: Iterable[Locator],
        chunk_ids: Iterable[bytes],
    ) -> None:
        """A pack of index blobs is in the mesh: remember the blobs and that the chunks
        they list are indexed, atomically."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO packs VALUES (?, ?, ?, ?, ?)", (pack_id, k, n, size, placed)
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO index_blobs VALUES (?, ?, ?)",
                ((loc.pack_id, loc.offset, loc.length) for loc in blobs),
            )
            self._db.executemany(
                "DELETE FROM unindexed WHERE chunk_id = ?", ((cid,) for cid in chunk_ids)
            )

    def add_locators(self, entries: Iterable[tuple[bytes, Locator]]) -> None:
        """Learn where chunks are (from index blobs); chunks in released packs are skipped."""
        with self._transaction():
            self._db.executemany(
                "INSERT OR IGNORE INTO chunks SELECT ?, ?, ?, ? "
                "WHERE NOT EXISTS (SELECT 1 FROM released WHERE pack_id = ?)",
                ((cid, loc.pack_id, loc.offset, loc.length, loc.pack_id) for cid, loc in entries),
            )

    def pack_ids(self) -> set[bytes]:
        """Every pack this owner has placed and not released: data and index packs."""
        rows = self._db.execute(
            "SELECT pack_id FROM chunks UNION SELECT pack_id FROM index_blobs "
            "UNION SELECT pack_id FROM packs"
        )
        released = self.released()
        return {row[0] for row in rows} - released

    def released(self) -> set[bytes]:
        return {row[0] for row in self._db.execute("SELECT pack_id FROM released")}

    def release(self, pack_ids: Iterable[bytes]) -> None:
        """Forget released packs and every chunk in them, atomically: a later backup must
        send such a chunk again rather than point at a pack that is going away."""
        ids = [(p,) for p in pack_ids]
        with self._transaction():
            self._db.executemany("INSERT OR IGNORE INTO released VALUES (?)", ids)
            self._db.executemany(
                "DELETE FROM unindexed WHERE chunk_id IN "
                "(SELECT chunk_id FROM chunks WHERE pack_id = ?)",
                ids,
            )
            self._db.executemany("DELETE FROM chunks WHERE pack_id = ?", ids)
            self._db.executemany("DELETE FROM packs WHERE pack_id = ?", ids)
            self._db.executemany("DELETE FROM index_blobs WHERE pack_id = ?", ids)

    def packs(self) -> Iterator[tuple[bytes, int, int, int, int]]:
        yield from self._db.execute("SELECT pack_id, k, n, size, placed FROM packs")

    def chunk_ids(self) -> Iterator[bytes]:
        for row in self._db.execute("SELECT chunk_id FROM chunks"):
            yield row[0]

    def chunk_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    # ---- files ---------------------------------------------------------

    def file_chunks(self, path: bytes, state: FileState) -> ChunkList | None:
        """The chunk ids of an unchanged file whose chunks are all known to be in the mesh."""
        return self.unchanged_files({path: state}).get(path)

    def unchanged_files(self, states: dict[bytes, FileState]) -> dict[bytes, ChunkList]:
        """`file_chunks` for many files at once: those unchanged, with their chunk ids."""
        candidates: dict[bytes, ChunkList] = {}
        for batch in _batches(list(states)):
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, inode, ctime_ns, chunks FROM files "
                f"WHERE path IN ({marks})",
                batch,
            )
            for path, size, mtime_ns, inode, ctime_ns, chunks in rows:
                if FileState(size, mtime_ns, inode, ctime_ns) == states[path]:
                    candidates[path] = tuple((cid, n) for cid, n in cbor2.loads(chunks))
        held = self.known_chunks(cid for chunks in candidates.values() for cid, _ in chunks)
        return {
            path: chunks
            for path, chunks in candidates.items()
            if all(cid in held for cid, _ in chunks)
        }

    def remember_file(self, path: bytes, state: FileState, chunks: ChunkList) -> None:
        self.remember_files([(path, state, chunks)])

    def remember_files(self, files: Iterable[tuple[bytes, FileState, ChunkList]]) -> None:
        """Remember what files looked like and their chunks, in one transaction."""
        rows = [
            (
                path,
                state.size,
                state.mtime_ns,
                state.inode,
                cbor2.dumps([[cid, size] for cid, size in chunks]),
                state.ctime_ns,
            )
            for path, state, chunks in files
        ]
        if not rows:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns, inode, chunks, ctime_ns) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
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
