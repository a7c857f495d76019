"""A disk that fills while a store writes: the error says the disk is full and where,
and never advises moving a file aside, which is for a damaged one."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from p2pbackup.backup.catalog import Catalog
from p2pbackup.base.full_disk import disk_full
from p2pbackup.base.sqlite import sqlite_problem, write_transaction
from p2pbackup.dht.record_disk import RecordDisk


def _full_soon(db: sqlite3.Connection) -> None:
    """The database may grow a few pages more: SQLite's own SQLITE_FULL, as on a full disk."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count={pages + 2}")


def test_a_write_that_fills_the_disk_says_so_not_that_no_transaction_is_active(
    tmp_path: Path,
) -> None:
    """SQLite rolls back itself on SQLITE_FULL; the ROLLBACK after it failed with "cannot
    rollback - no transaction is active", and that line replaced the one saying why."""
    db = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    db.execute("CREATE TABLE t(v BLOB)")
    _full_soon(db)
    full = pytest.raises(sqlite3.OperationalError, match="database or disk is full")
    with full as err, write_transaction(db):
        for _ in range(50):
            db.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
    assert disk_full(err.value) and not db.in_transaction
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 0  # all or nothing
    line = sqlite_problem(err.value, tmp_path / "x.db", "catalog", "the mesh")
    assert line.startswith(f"the disk holding {tmp_path} is full: free some space")
    assert "move it aside" not in line


def test_a_full_records_file_and_catalog_say_the_disk_is_full(tmp_path: Path) -> None:
    disk = RecordDisk(tmp_path / "records.sqlite3")
    _full_soon(disk._db)
    full = pytest.raises(Exception, match=r"^the disk holding .* is full")
    with full as err, disk._transaction():
        for i in range(50):
            disk._db.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (os.urandom(20), b"", b"o", b"n", 0, i, os.urandom(3000), b"s"),
            )
    assert "move it aside" not in str(err.value)
    catalog = Catalog(tmp_path / "catalog.db")
    _full_soon(catalog._db)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"), catalog._transaction():
        for _ in range(50):
            catalog._db.execute("CREATE TABLE IF NOT EXISTS pad(v BLOB)")
            catalog._db.execute("INSERT INTO pad VALUES (?)", (os.urandom(3000),))
    assert not catalog._db.in_transaction


def test_a_damaged_file_is_still_to_be_moved_aside(tmp_path: Path) -> None:
    damaged = sqlite3.DatabaseError("file is not a database")
    damaged.sqlite_errorcode = sqlite3.SQLITE_NOTADB
    line = sqlite_problem(damaged, tmp_path / "c.db", "catalog", "the mesh")
    assert "move it aside" in line and "rebuilds it from the mesh" in line
