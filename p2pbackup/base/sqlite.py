"""The one way the stores group SQLite writes: commit together or not at all."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


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
        db.execute("ROLLBACK")
        raise
