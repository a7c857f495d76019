"""The worker side of a restore: creating paths, writing files from a pack's opened
chunks (`restore_open`), finishing them.

These run in a worker thread (`run_sync`), a batch per call: a hand-off per
file or per chunk cost more than the work. A path is never written through a
symlink left in the target, a file whose chunk fails its check is not created
(or, spread over several packs, is removed) rather than left with a hole, and
once the target is out of space or quota every worker stops before its next
file (`Halt`) instead of each failing in turn.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from typing import Any

from p2pbackup.backup.restore_open import Opened, Piece
from p2pbackup.backup.tree import EntryKind, TreeEntry, Xattrs
from p2pbackup.codec.chunker import ZERO_MIN, data_spans
from p2pbackup.errors import P2PBackupError


@dataclass(eq=False)
class FilePlan:
    """One file to restore: where its chunks lie, and how writing it went."""

    path: bytes
    entry: TreeEntry
    pieces: tuple[Piece, ...]
    spread: bool = False  # over several packs: made at walk time, finished at the end
    finished: bool = False  # a spread file's mode and mtime set (or the file removed)
    packs_left: int = 0  # packs whose pieces of this file are not written yet
    failed: str | None = None
    unset: str | None = None  # restored, but why its mode or mtime could not be set

    @property
    def whole(self) -> bool:
        """Every piece written, from every pack, and none failed."""
        return self.failed is None and self.packs_left == 0


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class TargetFull(Exception):
    """The target is out of space or quota, so every write after this one would fail
    too. `done` holds the outcomes of the items before the one that failed."""

    def __init__(self, reason: str, done: list[Any]) -> None:
        super().__init__(reason)
        self.done = done


@dataclass
class Halt:
    """Shared with the workers: once one finds the target full, the others stop
    before their next file instead of each finding out with a failed write."""

    reason: str | None = None

    def check(self, done: list[Any]) -> None:
        if self.reason is not None:
            raise TargetFull(self.reason, done)

    def full(self, exc: OSError, done: list[Any]) -> TargetFull:
        self.reason = self.reason or _why(exc).lower()
        return TargetFull(self.reason, done)


@dataclass(frozen=True)
class Make:
    """A path to create: `entry` says what; None is a folder on the way to an included
    path. `file` is the plan of a file spread over several packs."""

    path: bytes
    entry: TreeEntry | None
    file: FilePlan | None = None


def make_entries(makes: list[Make], halt: Halt) -> list[str | None]:
    """Worker side of the folder walk: create each path in order; why each failed, or None."""
    reasons: list[str | None] = []
    for make in makes:
        halt.check(reasons)
        entry = make.entry
        try:
            if entry is None or entry.kind is EntryKind.DIR:
                _make_dir(make.path)
            elif entry.kind is EntryKind.SYMLINK:
                _make_symlink(make.path, entry)
            elif entry.kind is not EntryKind.FILE:
                _make_special(make.path, entry)
            else:
                fd = _create(make.path)
                try:
                    os.ftruncate(fd, entry.size)
                except OSError:
                    _remove_partial(make.path)
                    raise
                finally:
                    os.close(fd)
        except OSError as exc:
            if exc.errno in _FULL:
                raise halt.full(exc, reasons) from None
            reasons.append(_why(exc))
            continue
        reasons.append(None)
    return reasons


def open_target(root: bytes) -> bool:
    """Make the restore's folder (and its parents), and check it can be written in
    before anything is planned: else every entry would fail one by one and the
    restore would report nothing restored, as if there were nothing to restore.
    Whether the folder was made here; `P2PBackupError` naming it and why otherwise."""
    where = os.fsdecode(root)
    existed = os.path.isdir(root)
    try:
        os.makedirs(root, 0o700, exist_ok=True)
    except OSError as exc:
        raise P2PBackupError(
            f"cannot create the restore folder {where}: {_why(exc).lower()}"
        ) from None
    if not os.access(root, os.W_OK | os.X_OK):
        read_only = os.statvfs(root).f_flag & os.ST_RDONLY
        reason = "read-only file system" if read_only else "permission denied"
        raise P2PBackupError(f"cannot restore into {where}: {reason}; nothing was restored")
    return not existed


def remove_empty(folder: bytes) -> None:
    """Remove a folder this restore made, if it is still empty."""
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def finish_files(items: list[tuple[bytes, TreeEntry, bool]]) -> list[str | None]:
    """Worker side of the last step: set each restored path's extended attributes,
    mode and mtime (True) or remove a file that could not be rebuilt (False); what
    could not be set, or None."""
    reasons: list[str | None] = []
    for path, entry, restored in items:
        try:
            if restored:
                reasons.append(_set_meta(path, entry))
            else:
                _remove_partial(path)
                reasons.append(None)
        except OSError as exc:
            reasons.append(f"mode or mtime not set: {_why(exc)}")
    return reasons


def _make_dir(path: bytes) -> None:
    # A symlink where a folder goes would send the folder's contents elsewhere.
    if os.path.islink(path):
        os.unlink(path)
    os.makedirs(path, 0o700, exist_ok=True)


def _create(path: bytes) -> int:
    """Open `path` as a new empty file for writing, replacing a symlink in the way."""
    # O_NONBLOCK: a FIFO where the file goes (one an earlier restore made) would
    # block the open until a reader came; it fails with ENXIO instead, and is
    # replaced. It changes nothing for a regular file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENXIO):
            raise
    os.unlink(path)  # a symlink: writing through it would land elsewhere
    return os.open(path, flags, 0o600)


def _make_symlink(path: bytes, entry: TreeEntry) -> None:
    assert entry.target is not None
    if os.path.lexists(path) and not stat.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)
    os.symlink(entry.target, path)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)


def _set_meta(path: bytes, entry: TreeEntry) -> str | None:
    # Attributes first: a user.* attribute needs write permission, which the mode
    # may take away.
    unset = set_xattrs(path, entry.xattrs) if entry.xattrs else None
    os.chmod(path, entry.mode)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
    return unset


_NODE_TYPE = {
    EntryKind.FIFO: stat.S_IFIFO,
    EntryKind.SOCKET: stat.S_IFSOCK,
    EntryKind.CHAR_DEVICE: stat.S_IFCHR,
    EntryKind.BLOCK_DEVICE: stat.S_IFBLK,
}


def _make_special(path: bytes, entry: TreeEntry) -> None:
    """A FIFO, socket or device node, with its mode and mtime. mknod makes a socket
    file without binding one; a device node needs root (the plan asks only then)."""
    if os.path.lexists(path) and not stat.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)
    device = os.makedev(*entry.rdev) if entry.rdev is not None else 0
    os.mknod(path, _NODE_TYPE[entry.kind] | 0o600, device)
    os.chmod(path, entry.mode)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))


def set_xattrs(where: bytes | int, xattrs: Xattrs, follow: bool = True) -> str | None:
    """Set extended attributes on a path or open file; which could not be set and why,
    or None. One refused attribute (a file system without them, a namespace that
    needs root) does not stop the others."""
    refused: list[str] = []
    reason = ""
    for name, value in xattrs:
        try:
            os.setxattr(where, name, value, follow_symlinks=follow)
        except OSError as exc:
            refused.append(os.fsdecode(name))
            reason = reason or _why(exc)
    if not refused:
        return None
    return f"extended attributes {', '.join(refused)} not set: {reason}"


def xattrs_of_made(items: list[tuple[bytes, TreeEntry]]) -> list[str | None]:
    """Worker side: the extended attributes of symlinks and special files made by the
    walk (never followed); what could not be set, or None."""
    return [set_xattrs(path, entry.xattrs, follow=False) for path, entry in items]


def make_links(items: list[tuple[bytes, bytes]]) -> list[str | None]:
    """Worker side: hard-link each path to its group's first restored path, replacing
    anything but a folder in the way; why each failed, or None."""
    reasons: list[str | None] = []
    for path, holder in items:
        try:
            try:
                os.link(holder, path, follow_symlinks=False)
            except FileExistsError:
                if stat.S_ISDIR(os.lstat(path).st_mode):
                    raise
                os.unlink(path)
                os.link(holder, path, follow_symlinks=False)
        except OSError as exc:
            reasons.append(f"hard link not made: {_why(exc)}")
            continue
        reasons.append(None)
    return reasons


@dataclass(frozen=True)
class Write:
    """What one file has in one pack. `entry` is given when the file lies whole in
    it: then the file is created, written and finished here."""

    path: bytes
    entry: TreeEntry | None
    pieces: list[Piece]


def write_pack(
    writes: list[Write], opened: list[Opened], halt: Halt
) -> list[tuple[int, str | None, str | None]]:
    """Worker side of `RestoreEngine._write_files`: each file's chunks of one pack, opened
    already (`restore_open.open_pieces`); stops with `TargetFull` once the target is."""
    outcomes: list[tuple[int, str | None, str | None]] = []
    for write, chunks in zip(writes, opened, strict=True):
        halt.check(outcomes)
        try:
            outcomes.append(_write_file(write, chunks))
        except OSError as exc:  # only space or quota: the file is gone already
            raise halt.full(exc, outcomes) from None
    return outcomes


def _write_file(write: Write, chunks: Opened) -> tuple[int, str | None, str | None]:
    """(bytes restored, why the file failed or None, why its mode or mtime was not set
    or None). A file with a chunk that failed its check is not created here (a spread
    one is removed at the end of the restore); one that fails while written is removed
    if it was created here. Out of space or quota, the `OSError` is raised once the
    file is removed.

    A hole (None) is not written: the file is new (created empty, or at its size with
    nothing in it), so the range reads as zeros."""
    if isinstance(chunks, str):
        return 0, chunks, None
    fd: int | None = None
    written = end = data_end = 0
    try:
        try:
            for offset, plain, length in chunks:
                if fd is None:
                    if write.entry is not None:
                        fd = _create(write.path)
                    else:
                        fd = os.open(write.path, os.O_WRONLY | os.O_NOFOLLOW)
                if plain is not None:
                    data_end = max(data_end, _write_data(fd, offset, plain))
                written += length
                end = max(end, offset + length)
            if write.entry is None:
                return written, None, None
            if fd is None:  # an empty file
                fd = _create(write.path)
            if end > data_end:  # it ends in a hole
                os.ftruncate(fd, end)
            return written, None, _finish_open(fd, write.entry)
        finally:
            if fd is not None:
                os.close(fd)
    except OSError as exc:
        if write.entry is not None and fd is not None:
            _remove_partial(write.path)
        if exc.errno in _FULL:
            raise
        return 0, _why(exc), None


def _finish_open(fd: int, entry: TreeEntry) -> str | None:
    """Give an open file its extended attributes, mode and mtime; what could not be
    set, or None."""
    unset = set_xattrs(fd, entry.xattrs) if entry.xattrs else None
    try:
        os.fchmod(fd, entry.mode)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
    except OSError as exc:
        return f"mode or mtime not set: {_why(exc)}"
    return unset


def _write_data(fd: int, offset: int, plain: bytes | bytearray) -> int:
    """Write a chunk at `offset` in a new file, but for its runs of zeros, which the
    file then has as holes; where the last byte written ends."""
    if len(plain) < ZERO_MIN:
        _write_at(fd, offset, plain)
        return offset + len(plain)
    end = offset
    view = memoryview(plain)
    for start, stop in data_spans(plain):
        _write_at(fd, offset + start, view[start:stop])
        end = offset + stop
    return end


def _write_at(fd: int, offset: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:  # pwrite may write less than asked
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _remove_partial(path: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
