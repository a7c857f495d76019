"""The owner's local catalog: what the mesh already holds, and what files looked like.

A cache, never the source of truth: every row can be rebuilt from the mesh
(the index blobs listed by the snapshots). It exists so a second backup
sends only new chunks and skips unchanged files without reading them. SQLite
in WAL mode; a pack's chunks are committed in one transaction once all its
shares are placed, so a killed backup, run again, resends only what is
missing.

A placed data pack also stays *unindexed* until index blobs listing its chunks
are themselves placed. A snapshot can only be restored from chunks some index
blob lists, so a backup writes index blobs for the chunks of every unindexed
pack, including those a killed earlier run placed but never got to index. The
mark is per pack, not per chunk: two rows per chunk written and deleted again
cost a first backup more than all its other catalog writes but one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import cbor2

from p2pbackup.backup.snapshot import Locator
from p2pbackup.base.sqlite import write_transaction
from p2pbackup.store.sqlite_open import open_wal

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
    placed INTEGER NOT NULL,
    indexed INTEGER NOT NULL DEFAULT 1
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


@dataclass(frozen=True)
class IndexPack:
    """A placed pack of index blobs, as `Catalog.record_index` records it."""

    pack_id: bytes
    k: int
    n: int
    size: int
    placed: int
    blobs: tuple[Locator, ...]


@dataclass(frozen=True, slots=True)
class FileState:
    """What a file looked like when its chunks were last recorded. The ctime catches
    a rewrite that kept the size and put the old mtime back."""

    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int = 0


class Catalog:
    def __init__(self, path: Path, *, _sync: str = "FULL") -> None:
        """`synchronous=FULL`: a commit returns once the log is synced, so a pack the
        catalog says is placed is still known after a power cut (decision 0027). `_sync`
        lets the benchmark measure that against NORMAL."""
        if _sync not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous mode must be FULL or NORMAL, got {_sync!r}")
        self._log = Path(f"{path}-wal")
        self._sync = _sync
        self._db = open_wal(path, "catalog", "the mesh")
        self._db.execute(f"PRAGMA synchronous={_sync}")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(files)")}
        if "ctime_ns" not in columns:  # a catalog written before files kept their ctime
            self._db.execute("ALTER TABLE files ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0")
        self._mark_packs_not_chunks()

    def _mark_packs_not_chunks(self) -> None:
        """A catalog that listed unindexed chunks one by one: mark their packs instead.

        Write-locked from the start: the peer and an engine process may open the same
        catalog at once, and two read transactions both turning into writers would
        leave one of them refused."""
        if not self._needs_pack_marks():
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(packs)")}
            if "indexed" not in columns:
                self._db.execute("ALTER TABLE packs ADD COLUMN indexed INTEGER NOT NULL DEFAULT 1")
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
            if "unindexed" in tables:
                self._db.execute(
                    "UPDATE packs SET indexed = 0 WHERE pack_id IN (SELECT c.pack_id "
                    "FROM unindexed u JOIN chunks c ON c.chunk_id = u.chunk_id)"
                )
                self._db.execute("DROP TABLE unindexed")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _needs_pack_marks(self) -> bool:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(packs)")}
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master")}
        return "indexed" not in columns or "unindexed" in tables

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def synced_once(self) -> Iterator[None]:
        """Commits inside return before the log reaches the disk; leaving syncs it once.

        For a backup's commit per placed pack: each synced log was a wait of 4-30 ms on
        the engine's loop, and a backup of 200 MB makes 38 of them (decision 0082).
        Nothing is lost to a kill (the log is in the OS's cache), and after a power cut
        the catalog is as it was after some earlier commit (SQLite drops a log's torn
        tail): the packs it forgot are sent again, as after any cache's loss. Leaving,
        even by an error, makes every commit durable before the backup reports."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self._db.execute(f"PRAGMA synchronous={self._sync}")
            self._sync_log()

    def _sync_log(self) -> None:
        try:
            log = os.open(self._log, os.O_RDONLY)
        except FileNotFoundError:  # checkpointed away: NORMAL synced the database then
            return
        try:
            os.fsync(log)
        finally:
            os.close(log)

    # ---- chunks and packs ---------------------------------------------

    def locate(self, chunk_id: bytes) -> Locator | None:
        row = self._db.execute(
            "SELECT pack_id, offset, length FROM chunks WHERE chunk_id = ?", (chunk_id,)
        ).fetchone()
        return None if row is None else Locator(row[0], row[1], row[2])

    def holds_chunks(self) -> bool:
        """Whether any chunk is known to be in the mesh."""
        return self._db.execute("SELECT 1 FROM chunks LIMIT 1").fetchone() is not None

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
        """A data pack is in the mesh: remember it and every chunk in it, atomically. It
        stays unindexed until `record_index` marks it."""
        rows = [(cid, loc.pack_id, loc.offset, loc.length) for cid, loc in chunks]
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO packs VALUES (?, ?, ?, ?, ?, 0)",
                (pack_id, k, n, size, placed),
            )
            self._db.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", rows)

    def unindexed_packs(self) -> list[bytes]:
        """Placed data packs whose chunks no placed index blob lists yet."""
        rows = self._db.execute("SELECT pack_id FROM packs WHERE indexed = 0 ORDER BY pack_id")
        return [row[0] for row in rows]

    def pack_chunks(self, pack_id: bytes) -> list[tuple[bytes, Locator]]:
        """The chunks a pack holds, as far as this catalog knows."""
        rows = self._db.execute(
            "SELECT chunk_id, offset, length FROM chunks WHERE pack_id = ?", (pack_id,)
        )
        return [(row[0], Locator(pack_id, row[1], row[2])) for row in rows]

    def unindexed_count(self) -> int:
        """How many chunks lie in unindexed packs."""
        row = self._db.execute(
            "SELECT count(*) FROM chunks c JOIN packs p ON p.pack_id = c.pack_id "
            "WHERE p.indexed = 0"
        ).fetchone()
        return int(row[0])

    def record_index(self, packs: Iterable[IndexPack], indexed: Iterable[bytes]) -> None:
        """Packs of index blobs are in the mesh: remember them and their blobs, and mark
        the data packs `indexed` whose chunks those blobs list, all in one transaction,
        so no data pack counts as indexed by a blob the catalog does not know."""
        with self._transaction():
            for pack in packs:
                self._db.execute(
                    "INSERT OR REPLACE INTO packs VALUES (?, ?, ?, ?, ?, 1)",
                    (pack.pack_id, pack.k, pack.n, pack.size, pack.placed),
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO index_blobs VALUES (?, ?, ?)",
                    ((loc.pack_id, loc.offset, loc.length) for loc in pack.blobs),
                )
            self._db.executemany(
                "UPDATE packs SET indexed = 1 WHERE pack_id = ?", ((p,) for p in indexed)
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
            self._db.executemany("DELETE FROM chunks WHERE pack_id = ?", ids)
            self._db.executemany("DELETE FROM packs WHERE pack_id = ?", ids)
            self._db.executemany("DELETE FROM index_blobs WHERE pack_id = ?", ids)

    def share_bytes(self, pack_id: bytes) -> int | None:
        """How long each share of a pack this owner placed is, about; None if unknown."""
        row = self._db.execute("SELECT size, k FROM packs WHERE pack_id = ?", (pack_id,)).fetchone()
        return None if row is None or row[1] < 1 else -(-int(row[0]) // int(row[1]))

    def packs(self) -> Iterator[tuple[bytes, int, int, int, int]]:
        yield from self._db.execute("SELECT pack_id, k, n, size, placed FROM packs")

    def chunk_ids(self) -> Iterator[bytes]:
        for row in self._db.execute("SELECT chunk_id FROM chunks"):
            yield row[0]

    def chunk_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    # ---- files ---------------------------------------------------------

    def remembers_files(self) -> bool:
        """Whether any file is remembered: a first backup has nothing to look up."""
        return self._db.execute("SELECT 1 FROM files LIMIT 1").fetchone() is not None

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

    def _transaction(self) -> AbstractContextManager[None]:
        # A deferred BEGIN, as the catalog has always begun its writes.
        return write_transaction(self._db, "BEGIN")
