"""Records kept on disk, so a peer's copies outlive a restart or a power cut.

One SQLite file in WAL mode with `synchronous=FULL`: a commit returns only once
the write-ahead log is on the disk, so a record acknowledged after `write`
survives a power cut at any later instant (with NORMAL, the last commits before
a cut may roll back). Each signed entry is one row, so adding an entry to a
set record writes that entry alone, never the whole set again: a writer's tiny
puts cost the replica a tiny write (decision 0025).

The class is synchronous and keeps no state but its connection; the caller
serialises calls and runs them off the event loop (`RecordStore`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from p2pbackup.base.sqlite import sqlite_problem, write_transaction
from p2pbackup.dht.records import Record, RecordKind, SignedEntry
from p2pbackup.errors import P2PBackupError

SCHEMA_VERSION = 1
_TABLE = """CREATE TABLE IF NOT EXISTS entries (
    key BLOB NOT NULL,
    slot BLOB NOT NULL,
    owner BLOB NOT NULL,
    name BLOB NOT NULL,
    kind INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    value BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (key, slot)
) WITHOUT ROWID"""
_COLUMNS = "key, slot, owner, name, kind, seq, value, signature"


class RecordFileError(P2PBackupError):
    """A records file cannot be opened or read (damaged, not a database, unreadable)."""


def _slot(kind: RecordKind, entry: SignedEntry) -> bytes:
    # A set keeps one entry per value; a value record keeps one entry in all.
    return entry.value if kind is RecordKind.SET else b""


class RecordDisk:
    """The `entries` table of one records file; every write commits durably."""

    def __init__(self, path: Path, *, _sync: str = "FULL") -> None:
        """`_sync` other than FULL is for benchmarks and tests that show what it loses."""
        self.path = path
        try:
            _create_private(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={_sync}")
            self._db.execute(_TABLE)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise RecordFileError(
                    f"{path} has records in format {version}; this version reads {SCHEMA_VERSION}"
                )
        except sqlite3.Error as exc:
            self._db.close()
            raise self._error(exc) from None
        except BaseException:
            self._db.close()
            raise

    def _error(self, exc: Exception) -> RecordFileError:
        rebuilt = "the mesh, whose owners re-publish their records"
        return RecordFileError(sqlite_problem(exc, self.path, "records file", rebuilt))

    def load(self) -> list[Record]:
        """Every record in the file, as rows were written; entries are checked by the caller."""
        try:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM entries ORDER BY key, seq, slot"
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        records: list[Record] = []
        current: list[tuple[Any, ...]] = []
        for row in rows:
            if current and current[0][0] != row[0]:
                records.append(_record(current))
                current = []
            current.append(row)
        if current:
            records.append(_record(current))
        return records

    def write(self, record: Record, entries: Iterable[SignedEntry]) -> None:
        """Commit `entries` of `record` (new or replacing their slot); durable on return."""
        head = (record.key, record.owner, record.name, int(record.kind))
        rows = [
            (head[0], _slot(record.kind, e), *head[1:], e.seq, e.value, e.signature)
            for e in entries
        ]
        with self._transaction():
            self._db.executemany(
                f"INSERT OR REPLACE INTO entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def drop(self, keys: Iterable[bytes]) -> None:
        """Remove every entry of these records."""
        with self._transaction():
            self._db.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in keys])

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            with write_transaction(self._db):
                yield
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def close(self) -> None:
        self._db.close()


def _record(rows: list[tuple[Any, ...]]) -> Record:
    _, _, owner, name, kind, *_ = rows[0]
    entries = tuple(SignedEntry(int(r[5]), bytes(r[6]), bytes(r[7])) for r in rows)
    return Record(bytes(owner), bytes(name), RecordKind(kind), entries)


def _create_private(path: Path) -> None:
    """Create the file owner-only, and make its name durable: SQLite syncs the
    directory for the log files it creates, not for the database file itself."""
    if path.exists():
        return
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def list_records(path: Path) -> list[Record]:
    """What a records file holds, for inspection and tests (unchecked, as stored)."""
    disk = RecordDisk(path)
    try:
        return disk.load()
    finally:
        disk.close()
