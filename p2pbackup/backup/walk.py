"""Reading the filesystem for a backup: one directory listing at a time.

Names stay bytes end to end (os.fsencode), so any name the filesystem holds,
UTF-8 or not, is saved and restored exactly.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from p2pbackup.backup.tree import EntryKind


@dataclass(frozen=True, slots=True)
class FsEntry:
    path: bytes
    name: bytes
    kind: EntryKind | None  # None: a socket, device or fifo, which backups skip
    mode: int
    mtime_ns: int
    size: int
    inode: int
    ctime_ns: int = 0
    target: bytes | None = None


def _kind(mode: int) -> EntryKind | None:
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    if stat.S_ISDIR(mode):
        return EntryKind.DIR
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    return None


def stat_entry(path: bytes) -> FsEntry:
    """lstat one path: symlinks are saved as links, never followed."""
    st = os.lstat(path)
    target = os.readlink(path) if _kind(st.st_mode) is EntryKind.SYMLINK else None
    return entry_of(path, st, target)


def entry_of(
    path: bytes, st: os.stat_result, target: bytes | None = None, name: bytes | None = None
) -> FsEntry:
    """The entry a stat result describes (an lstat, or an fstat of a file being read)."""
    kind = _kind(st.st_mode)
    return FsEntry(
        path=path,
        name=name if name is not None else os.path.basename(path.rstrip(b"/")) or path,
        kind=kind,
        mode=stat.S_IMODE(st.st_mode),
        mtime_ns=st.st_mtime_ns,
        size=st.st_size if kind is EntryKind.FILE else 0,
        inode=st.st_ino,
        ctime_ns=st.st_ctime_ns,
        target=target,
    )


def list_directory(path: bytes, excludes: tuple[str, ...] = ()) -> list[FsEntry]:
    """The entries of one directory, sorted by name, minus excluded ones.

    An entry that vanishes between the listing and its lstat is left out: it is
    not there any more, and it must not cost the rest of the folder."""
    entries = []
    with os.scandir(path) as listing:
        for item in listing:
            if is_excluded(item.path, excludes):
                continue
            try:
                # The listing already holds the path and name: one lstat, no joins.
                st = item.stat(follow_symlinks=False)
                target = os.readlink(item.path) if stat.S_ISLNK(st.st_mode) else None
            except FileNotFoundError:
                continue
            entries.append(entry_of(item.path, st, target, item.name))
    entries.sort(key=lambda e: e.name)
    return entries


def is_excluded(path: bytes, patterns: tuple[str, ...]) -> bool:
    """restic-like: a pattern with a slash matches the whole path, else the name."""
    if not patterns:
        return False
    text = os.fsdecode(path)
    name = os.path.basename(text)
    for pattern in patterns:
        subject = text if "/" in pattern else name
        if fnmatch.fnmatchcase(subject, pattern):
            return True
    return False


def absolute(path: str | Path) -> bytes:
    return os.fsencode(os.path.abspath(os.fspath(path)))
