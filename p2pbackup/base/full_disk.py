"""Whether an error says the disk is full, and what to tell the user then.

Apart from `base.sqlite`: the command line explains a full disk too, and loads no
database module to do it (decision 0065).
"""

from __future__ import annotations

import errno
import os
import sys

_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(caught: BaseException) -> bool:
    """Whether `caught` (or any error in its groups) says the disk or quota is full."""
    if isinstance(caught, BaseExceptionGroup):
        return any(disk_full(inner) for inner in caught.exceptions)
    if isinstance(caught, OSError):
        return caught.errno in _FULL_ERRNOS
    sqlite3 = sys.modules.get("sqlite3")  # not loaded: not one of its errors
    return (
        sqlite3 is not None
        and isinstance(caught, sqlite3.Error)
        and getattr(caught, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    )


def full_disk_line(path: str | os.PathLike[str]) -> str:
    """What to tell a user whose disk filled while writing under `path`."""
    return (
        f"the disk holding {os.fspath(path)} is full: free some space and run again "
        "(nothing saved before is lost)"
    )
