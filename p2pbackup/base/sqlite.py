"""The one way the stores group SQLite writes, and what a failed one means to a user."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator

from p2pbackup.base.full_disk import disk_full, full_disk_line

_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """Writes inside commit together or not at all, on a connection in autocommit mode.

    Write-locked from the start by default (`BEGIN IMMEDIATE`): a read that later turned
    into a write could be refused when another connection wrote meanwhile."""
    db.execute(begin)
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        roll_back(db)
        raise


def roll_back(db: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already: a COMMIT that failed on a
    full disk has, and the ROLLBACK's own error ("no transaction is active") then
    replaced the one that says why."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def sqlite_problem(
    exc: Exception, path: str | os.PathLike[str], what: str, rebuilt_from: str
) -> str:
    """One line for an error (SQLite's, or the system's) on the `what` file at `path`:
    moving the file aside is advice for a damaged one only, never for a full disk or a
    folder it cannot write."""
    if disk_full(exc):
        return full_disk_line(os.path.dirname(os.fspath(path)) or ".")
    if getattr(exc, "sqlite_errorcode", None) in _DAMAGED:
        return (
            f"cannot read the {what} {os.fspath(path)}: {exc}; move it aside and start "
            f"again (the peer rebuilds it from {rebuilt_from})"
        )
    return f"cannot use the {what} {os.fspath(path)}: {exc}"
