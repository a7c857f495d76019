"""Where a file share store keeps each share's bytes, and how a file gets there durably.

Files live under `root/shares/ab/cd/<pack id hex>.<index>.<owner hex>`: the name alone
says which share a file holds, so an unclean stop can be reconciled against the index,
and two levels of fan-out keep each directory small. Stores written before shares were
keyed by owner named files `<pack id hex>.<index>`; `scan` reports those apart, so
opening the store can rename them (see `p2pbackup.store.recovery`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path
from typing import NamedTuple

from p2pbackup.base.files import write_atomically
from p2pbackup.store.admission import MAX_INDEX
from p2pbackup.store.contract import ShareKey

log = logging.getLogger("p2pbackup.store.shares")  # the name log lines have always carried

_SHARE_NAME = re.compile(r"([0-9a-f]{40})\.(\d{1,3})(?:\.([0-9a-f]{64}))?")

LegacyKey = tuple[bytes, int]
"""(pack id, index): how a file was named before shares were keyed by owner."""


def path_of(shares_dir: Path, key: ShareKey) -> Path:
    """Where a share's file lives; two levels of fan-out keep directories small."""
    hexid = key.pack_id.hex()
    return shares_dir / hexid[:2] / hexid[2:4] / f"{hexid}.{key.idx}.{key.owner.hex()}"


def legacy_path_of(shares_dir: Path, pack_id: bytes, index: int) -> Path:
    """Where a store written before shares were keyed by owner kept a share."""
    hexid = pack_id.hex()
    return shares_dir / hexid[:2] / hexid[2:4] / f"{hexid}.{index}"


def read_share(path: Path, skip: int = 0) -> bytes | None:
    """A share file's bytes after its first `skip` (its header), or None when it is gone.
    Read past the header, not sliced after: a share is large and one copy is enough."""
    try:
        with path.open("rb") as handle:
            handle.seek(skip)
            return handle.read()
    except FileNotFoundError:
        return None


def read_range(path: Path, start: int, length: int) -> bytes | None:
    """Up to `length` bytes of a share file from `start`, or None when it is gone."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(length)
    except FileNotFoundError:
        return None


def write_share(
    shares_dir: Path, path: Path, data: bytes, head: bytes = b"", *, fresh: bool = False
) -> None:
    """Write a share's file (`head`, then `data`) atomically, creating its fan-out
    directories, all durable before this returns.

    A `fresh` share (no row names it) is written under its own name, not a temp name
    renamed: the rename cost one more journal commit per share, and a crash that cuts
    the write leaves a file without a row that does not verify, which opening the
    store deletes (see `p2pbackup.store.recovery`). A file a row names is only ever
    replaced by a rename, so its old bytes stand until the new ones are whole.

    The directories are synced after the file, not each as it is made: on a
    journaling file system the file's sync commits the new directories with it,
    and the later syncs of their parents find nothing left to commit. Synced one
    by one, a fresh store paid four journal commits per share instead of two."""
    created = _make_dirs(shares_dir, path.parent)
    if fresh:
        write_new(path, data, head)
        fsync_dir(path.parent)
    else:
        write_atomically(path, data, head=head)
    for directory in created:
        fsync_dir(directory.parent)


def _make_dirs(shares_dir: Path, directory: Path) -> list[Path]:
    """Make `directory` and whichever of its parents below `shares_dir` are missing;
    the ones made, deepest first. Made outright, not looked up first: a share's fan-out
    directory is new for most packs, and one that exists costs one refused `mkdir`."""
    if directory == shares_dir:
        return []
    try:
        os.mkdir(directory)
    except FileExistsError:
        return []
    except FileNotFoundError:
        created = _make_dirs(shares_dir, directory.parent)
        # Made by another put since, as good as ours: its parent is synced all the same.
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
        return [directory, *created]
    return [directory]


def write_new(path: Path, data: bytes, head: bytes = b"") -> None:
    """`head` then `data` into a new file under `path`, synced; no copy of `data`, and
    no file object around the descriptor. Once synced, its cached pages are let go
    (`drop_cached`)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for part in (head, data):
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
        drop_cached(fd)
    finally:
        os.close(fd)


def drop_cached(fd: int) -> None:
    """Let the page cache go of a synced file's pages (decision 0086).

    A holder writes three times the size of every backup placed on it and reads a
    share back rarely (one block for an audit, k shares of a pack for a restore):
    kept in the cache, the shares pushed out what the machine's own programs had
    cached, and every new share needed pages the cache had never used. On a virtual
    machine that hands freed memory back to its host, such pages fault on first
    touch: copying 660 MB of shares into them cost the nine holders of a 200 MB
    backup 2.0-2.4 CPU seconds in the kernel instead of 0.4-0.5. Let go, the pages
    of one share are the pages the next one is written into. Synced pages are clean,
    so this is safe at any moment; where the call is missing it is skipped."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Scan(NamedTuple):
    """The share files found on disk, with their paths and sizes."""

    files: dict[ShareKey, tuple[Path, int]]
    legacy: dict[LegacyKey, tuple[Path, int]]  # named before shares were keyed by owner
    temps_removed: int


def scan(shares_dir: Path) -> Scan:
    """The share files on disk with their sizes, after deleting the temp files a write
    left when it was cut short.

    A file whose name is not one this layout gives is logged and left alone: it is
    not ours to delete."""
    found = Scan({}, {}, 0)
    temps_removed = 0
    for dirpath, _dirnames, filenames in os.walk(shares_dir):
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") and name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                temps_removed += 1
                continue
            if not _note(found, shares_dir, path, _SHARE_NAME.fullmatch(name)):
                log.warning("share store: ignoring unexpected file %s", path)
    return found._replace(temps_removed=temps_removed)


def _note(found: Scan, shares_dir: Path, path: Path, match: re.Match[str] | None) -> bool:
    """File `path` under its key in `found`; False when its name is not one of ours."""
    if match is None or int(match.group(2)) > MAX_INDEX:
        return False
    pack_id, index = bytes.fromhex(match.group(1)), int(match.group(2))
    if match.group(3) is None:
        if legacy_path_of(shares_dir, pack_id, index) != path:
            return False
        found.legacy[(pack_id, index)] = (path, path.stat().st_size)
        return True
    key = ShareKey(pack_id, index, bytes.fromhex(match.group(3)))
    if path_of(shares_dir, key) != path:
        return False
    found.files[key] = (path, path.stat().st_size)
    return True
