"""Opening a store's SQLite file: one that is not a database (damaged) is one line
saying how the peer gets it back, not a traceback that stops `serve`."""

from __future__ import annotations

import os
import sqlite3

from p2pbackup.base.sqlite import sqlite_problem
from p2pbackup.errors import P2PBackupError


def open_wal(path: str | os.PathLike[str], what: str, rebuilt_from: str) -> sqlite3.Connection:
    """A connection in autocommit and WAL mode, as every store of ours uses them."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise P2PBackupError(sqlite_problem(exc, path, what, rebuilt_from)) from None
    return db
