"""Reading the filesystem for a backup: one directory listing at a time.

Names stay bytes end to end (os.fsencode), so any name the filesystem holds,
UTF-8 or not, is saved and restored exactly. Every kind of entry is listed:
FIFOs, sockets and device nodes are saved as what they are, and each entry
carries what a restore needs to rebuild it (a device's number, the inode and
link count that make hard links, the extended attributes).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p2pbackup.backup.tree import (
    DEVICES,
    MAX_XATTR_BYTES,
    MAX_XATTR_NAME,
    MAX_XATTR_VALUE,
    EntryKind,
    Xattrs,
)
from p2pbackup.errors import P2PBackupError


@dataclass(frozen=True, slots=True)
class FsEntry:
    path: bytes
    name: bytes
    kind: EntryKind | None  # None: a kind no file system we know of has
    mode: int
    mtime_ns: int
    size: int
    inode: int
    ctime_ns: int = 0
    target: bytes | None = None
    device: int = 0  # st_dev: with the inode, what makes two paths one hard-linked file
    nlink: int = 1
    rdev: tuple[int, int] | None = None  # a device node's (major, minor)
    xattrs: Xattrs = ()
    xattr_error: str | None = None  # why its extended attributes were not all read


_KIND_OF_TYPE = {
    stat.S_IFREG: EntryKind.FILE,
    stat.S_IFDIR: EntryKind.DIR,
    stat.S_IFLNK: EntryKind.SYMLINK,
    stat.S_IFIFO: EntryKind.FIFO,
    stat.S_IFSOCK: EntryKind.SOCKET,
    stat.S_IFCHR: EntryKind.CHAR_DEVICE,
    stat.S_IFBLK: EntryKind.BLOCK_DEVICE,
}
# A file system that keeps no extended attributes says so with one of these.
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


def stat_entry(path: bytes, *, follow: bool = False) -> FsEntry:
    """lstat one path: symlinks are saved as links, never followed, unless `follow`
    (a symlink given as a path to back up)."""
    st = os.stat(path) if follow else os.lstat(path)
    target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    return entry_of(path, st, target, xattrs=read_xattrs(path, follow=follow))


def entry_of(
    path: bytes,
    st: os.stat_result,
    target: bytes | None = None,
    name: bytes | None = None,
    xattrs: tuple[Xattrs, str | None] = ((), None),
) -> FsEntry:
    """The entry a stat result describes (an lstat, or an fstat of a file being read)."""
    kind = _KIND_OF_TYPE.get(stat.S_IFMT(st.st_mode))
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
        device=st.st_dev,
        nlink=st.st_nlink,
        rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in DEVICES else None,
        xattrs=xattrs[0],
        xattr_error=xattrs[1],
    )


def read_xattrs(path: bytes, *, follow: bool = False) -> tuple[Xattrs, str | None]:
    """A path's extended attributes (ACLs among them), sorted by name, and why some
    were not read, if so. A file system without them has none; an attribute that
    vanishes between the listing and its read is left out; a file that vanished
    raises FileNotFoundError, as its lstat would have."""
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return (), None
        if isinstance(exc, FileNotFoundError):
            raise
        return (), f"extended attributes not read: {exc.strerror or exc}"
    if not names:
        return (), None
    found: list[tuple[bytes, bytes]] = []
    problem = None
    total = 0
    for text in sorted(names, key=os.fsencode):
        name = os.fsencode(text)
        try:
            value = os.getxattr(path, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno != errno.ENODATA:
                problem = problem or f"extended attribute {text} not read: {exc.strerror}"
            continue
        total += len(name) + len(value)
        if len(name) > MAX_XATTR_NAME or len(value) > MAX_XATTR_VALUE or total > MAX_XATTR_BYTES:
            problem = problem or f"extended attribute {text} not kept: over the size limits"
            total -= len(name) + len(value)
            continue
        found.append((name, value))
    return tuple(found), problem


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
                xattrs = read_xattrs(item.path)
            except FileNotFoundError:
                continue
            entries.append(entry_of(item.path, st, target, item.name, xattrs))
    entries.sort(key=lambda e: e.name)
    return entries


def is_excluded(path: bytes, patterns: tuple[str, ...]) -> bool:
    """restic-like: a pattern without a slash matches a name; one that starts with a
    slash, the whole path; any other, the path's end, whole names only ("docs/old"
    skips /home/me/docs/old, not /home/me/mydocs/old). A trailing slash is dropped.
    It matched such a pattern against the whole path, so it never matched."""
    if not patterns:
        return False
    text = os.fsdecode(path)
    name = os.path.basename(text)
    for pattern in patterns:
        pattern = pattern.rstrip("/") or pattern
        if "/" not in pattern:
            subject = name
        else:
            subject = text
            if not pattern.startswith("/"):
                pattern = "*/" + pattern
        if fnmatch.fnmatchcase(subject, pattern):
            return True
    return False


def absolute(path: str | Path) -> bytes:
    return os.fsencode(os.path.abspath(os.fspath(path)))


def backup_roots(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[bytes], list[bytes]]:
    """The paths to back up, made absolute, and the names they are saved under.

    Refuses no path at all, two paths with one final name (one would hide the
    other in the root tree), and a path that does not exist."""
    roots = [absolute(Path(os.fspath(p))) for p in paths]
    if not roots:
        raise P2PBackupError("name at least one path to back up")
    names = [os.path.basename(r.rstrip(b"/")) or b"root" for r in roots]
    if len(set(names)) != len(names):
        raise P2PBackupError("two backup paths share a final name; back them up separately")
    for root in roots:
        if not os.path.lexists(root):
            raise P2PBackupError(f"{os.fsdecode(root)} does not exist")
    return roots, names


def stat_root(root: bytes) -> FsEntry:
    """A path to back up: a symlink to a folder is saved as the folder (what a user
    naming it means); any other symlink, and every symlink inside, as a link."""
    entry = stat_entry(root)
    if entry.kind is EntryKind.SYMLINK and os.path.isdir(root):
        return stat_entry(root, follow=True)
    return entry
