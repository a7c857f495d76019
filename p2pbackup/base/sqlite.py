"""The one way the stores group SQLite writes, and what a failed one means to a user."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from collections.abc import Iterator

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


@contextlib.contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """Writes inside commit together or not at all, on a connection in autocommit mode.

    Write-locked from the start (`BEGIN IMMEDIATE`): a read that later turned into a
    write could be refused when another connection wrote meanwhile."""
    db.execute("BEGIN IMMEDIATE")
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


def disk_full(caught: BaseException) -> bool:
    """Whether `caught` (or any error in its groups) says the disk or quota is full."""
    if isinstance(caught, BaseExceptionGroup):
        return any(disk_full(inner) for inner in caught.exceptions)
    if isinstance(caught, OSError):
        return caught.errno in _FULL_ERRNOS
    return isinstance(caught, sqlite3.Error) and (
        getattr(caught, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )


def full_disk_line(path: str | os.PathLike[str]) -> str:
    """What to tell a user whose disk filled while writing under `path`."""
    return (
        f"the disk holding {os.fspath(path)} is full: free some space and run again "
        "(nothing saved before is lost)"
    )


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
