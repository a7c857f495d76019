"""The shares this peer holds for others: one file per share, one SQLite row per file.

The API is synchronous and does no networking, so the peer calls it through
`trio.to_thread` and the simulator calls `MemoryShareStore` inline. Both
implementations keep one contract:

- `put` refuses a share that does not fit with `StoreFull`, whose message says
  how many bytes are free and how many were needed, and leaves nothing behind;
  putting a share that is already held (same key, same bytes) costs no space
  and may only extend its lease.
- A share is refused (`ShareRejected`) when its key is malformed or when the key
  is already held for a different owner, so no peer can overwrite someone
  else's share by reusing its pack id.
- `get` never serves a share whose bytes no longer match the digest recorded
  when it was stored; such a share is dropped, so repair notices it is gone.
  The digest is the share's Merkle root, the one its descriptor signs: a peer
  that has just checked a share against its descriptor passes the root to
  `put` rather than hashing the bytes a second time.

`FileShareStore` is crash-safe by ordering: a share file is complete and
fsynced before its index row commits, and on open the index and the files are
reconciled (rows without a file dropped, files without a row and temp files
deleted). A kill -9 at any point therefore loses at most the share being put,
which its sender was never told was stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Protocol

from p2pbackup.base.files import write_atomically
from p2pbackup.base.ids import PACK_ID_BYTES
from p2pbackup.codec.erasure import share_root
from p2pbackup.errors import P2PBackupError
from p2pbackup.store.capacity import format_size

log = logging.getLogger(__name__)

OWNER_BYTES = 32
MAX_INDEX = 254
DIGEST_BYTES = 32
_INT64 = 2**63

ShareKey = tuple[bytes, int]
"""(pack id, share index): names one share of one pack."""


class StoreFull(P2PBackupError):
    """The share does not fit in the space this peer offers; place it on another peer."""


class ShareRejected(P2PBackupError, ValueError):
    """The share is malformed or its key is held for a different owner."""


class StoreLocked(P2PBackupError):
    """Another process has this share store open."""


@dataclass(frozen=True)
class StoredShare:
    pack_id: bytes
    index: int
    data: bytes
    descriptor: bytes
    owner: bytes
    lease_expiry: int
    stored_at: int


class ShareInfo(NamedTuple):
    """One row of `list_shares`: enough to plan audits and collection without reading data."""

    pack_id: bytes
    idx: int  # `index` would shadow tuple.index
    size: int
    lease_expiry: int


class ShareStore(Protocol):
    """What the peer needs from wherever it keeps other owners' shares."""

    def put(
        self,
        pack_id: bytes,
        index: int,
        data: bytes,
        descriptor: bytes,
        owner: bytes,
        lease_expiry: int,
        now: int,
        root: bytes | None = None,
    ) -> None:
        """Hold a share; raises `StoreFull` or `ShareRejected` with a reason, storing nothing.

        `root` is the share's Merkle root when the caller has checked it already."""
        ...

    def get(self, pack_id: bytes, index: int) -> StoredShare | None:
        """The share, verified against its recorded digest, or None."""
        ...

    def has(self, pack_id: bytes, index: int) -> bool:
        """Whether the share is indexed (cheap: does not read the data)."""
        ...

    def indices(self, pack_id: bytes) -> list[int]:
        """The indices of this pack's shares held here (normally none or one)."""
        ...

    def delete(self, pack_id: bytes, index: int) -> bool:
        """Drop the share; False when it was not held."""
        ...

    def list_shares(self) -> Iterator[ShareInfo]:
        """Every held share as (pack_id, index, size, lease_expiry)."""
        ...

    def renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None = None
    ) -> int:
        """Set the lease of `owner`'s shares of `pack_id` (and the descriptor that says so,
        if given); returns how many were updated."""
        ...

    def expired(self, now: int) -> list[ShareKey]:
        """Keys whose lease has run out (`lease_expiry <= now`), soonest first."""
        ...

    @property
    def used_bytes(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    def stats(self) -> dict[str, int]:
        """Counts and byte totals for status output and metrics."""
        ...

    def close(self) -> None:
        """Release files and locks; the store is unusable afterwards."""
        ...


def digest_of(data: bytes) -> bytes:
    """A share's Merkle root: what `get` checks before serving it."""
    return share_root(data)


def _flat_digest(data: bytes) -> bytes:
    """BLAKE2b-256 of the bytes: the digest of rows written before schema version 2."""
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def _matches(data: bytes, digest: bytes, merkle: int) -> bool:
    return (digest_of(data) if merkle else _flat_digest(data)) == digest


def _check_key(pack_id: bytes, index: int) -> None:
    if not isinstance(pack_id, bytes) or len(pack_id) != PACK_ID_BYTES:
        raise ShareRejected(f"pack id must be {PACK_ID_BYTES} bytes, got {_describe(pack_id)}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise ShareRejected(f"share index must be an integer 0..{MAX_INDEX}, got {index!r}")


def _check_owner(owner: bytes) -> None:
    if not isinstance(owner, bytes) or len(owner) != OWNER_BYTES:
        raise ShareRejected(f"owner must be {OWNER_BYTES} bytes, got {_describe(owner)}")


def _check_time(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise ShareRejected(f"{name} must be a 64-bit integer, got {value!r}")


def _check_put(
    pack_id: bytes, index: int, data: bytes, descriptor: bytes, owner: bytes, lease: int, now: int
) -> None:
    _check_key(pack_id, index)
    _check_owner(owner)
    if not isinstance(data, bytes):
        raise ShareRejected(f"share data must be bytes, got {type(data).__name__}")
    if not isinstance(descriptor, bytes):
        raise ShareRejected(f"descriptor must be bytes, got {type(descriptor).__name__}")
    _check_time("lease_expiry", lease)
    _check_time("now", now)


def _describe(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return type(value).__name__


def _short(pack_id: bytes, index: int) -> str:
    return f"{pack_id.hex()[:16]}….{index}"


def _full_error(needed: int, used: int, capacity: int) -> StoreFull:
    free = max(0, capacity - used)
    return StoreFull(
        f"store full: {free} bytes free ({format_size(free)}), {needed} bytes needed "
        f"({format_size(needed)}) of capacity {capacity} bytes ({format_size(capacity)})"
    )


def _owner_conflict(pack_id: bytes, index: int) -> ShareRejected:
    return ShareRejected(f"share {_short(pack_id, index)} is already held for another owner")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryShareStore:
    """The same contract in dicts: for the simulator and tests, where disks are imaginary."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative, got {capacity}")
        self._capacity = capacity
        self._shares: dict[ShareKey, StoredShare] = {}
        self._used = 0

    def put(
        self,
        pack_id: bytes,
        index: int,
        data: bytes,
        descriptor: bytes,
        owner: bytes,
        lease_expiry: int,
        now: int,
        root: bytes | None = None,
    ) -> None:
        """Hold a share; see the module docstring for the re-put and refusal rules."""
        _check_put(pack_id, index, data, descriptor, owner, lease_expiry, now)
        key = (pack_id, index)
        old = self._shares.get(key)
        if old is not None and old.owner != owner:
            raise _owner_conflict(pack_id, index)
        if old is not None and old.data == data:
            if lease_expiry >= old.lease_expiry:
                self._shares[key] = StoredShare(
                    pack_id, index, data, descriptor, owner, lease_expiry, old.stored_at
                )
            return
        old_size = len(old.data) if old is not None else 0
        if self._used - old_size + len(data) > self._capacity:
            raise _full_error(len(data), self._used - old_size, self._capacity)
        self._shares[key] = StoredShare(pack_id, index, data, descriptor, owner, lease_expiry, now)
        self._used += len(data) - old_size

    def get(self, pack_id: bytes, index: int) -> StoredShare | None:
        """The share or None."""
        _check_key(pack_id, index)
        return self._shares.get((pack_id, index))

    def has(self, pack_id: bytes, index: int) -> bool:
        """Whether the share is held."""
        _check_key(pack_id, index)
        return (pack_id, index) in self._shares

    def indices(self, pack_id: bytes) -> list[int]:
        return sorted(i for p, i in self._shares if p == pack_id)

    def delete(self, pack_id: bytes, index: int) -> bool:
        """Drop the share; False when it was not held."""
        _check_key(pack_id, index)
        old = self._shares.pop((pack_id, index), None)
        if old is None:
            return False
        self._used -= len(old.data)
        return True

    def list_shares(self) -> Iterator[ShareInfo]:
        """Every held share, in key order (a snapshot: safe to delete while iterating)."""
        rows = [
            ShareInfo(s.pack_id, s.index, len(s.data), s.lease_expiry)
            for _, s in sorted(self._shares.items())
        ]
        return iter(rows)

    def renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None = None
    ) -> int:
        """Set the lease of `owner`'s shares of `pack_id`; others' shares are untouched."""
        _check_key(pack_id, 0)
        _check_owner(owner)
        _check_time("lease_expiry", lease_expiry)
        count = 0
        for key, share in self._shares.items():
            if share.pack_id == pack_id and share.owner == owner:
                self._shares[key] = StoredShare(
                    share.pack_id,
                    share.index,
                    share.data,
                    share.descriptor if descriptor is None else descriptor,
                    share.owner,
                    lease_expiry,
                    share.stored_at,
                )
                count += 1
        return count

    def expired(self, now: int) -> list[ShareKey]:
        """Keys whose lease has run out, soonest first."""
        _check_time("now", now)
        due = [s for s in self._shares.values() if s.lease_expiry <= now]
        due.sort(key=lambda s: (s.lease_expiry, s.pack_id, s.index))
        return [(s.pack_id, s.index) for s in due]

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def capacity(self) -> int:
        return self._capacity

    def stats(self) -> dict[str, int]:
        """Counts and byte totals for status output and metrics."""
        return {
            "shares": len(self._shares),
            "packs": len({s.pack_id for s in self._shares.values()}),
            "owners": len({s.owner for s in self._shares.values()}),
            "used_bytes": self._used,
            "capacity": self._capacity,
            "free_bytes": max(0, self._capacity - self._used),
            "corrupt_dropped": 0,
        }

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS shares (
    pack_id BLOB NOT NULL,
    idx INTEGER NOT NULL,
    size INTEGER NOT NULL,
    owner BLOB NOT NULL,
    lease_expiry INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    descriptor BLOB NOT NULL,
    digest BLOB NOT NULL,
    merkle INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (pack_id, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS shares_by_expiry ON shares (lease_expiry);
"""
_SHARE_NAME = re.compile(r"([0-9a-f]{40})\.(\d{1,3})")


class FileShareStore:
    """Shares as files under `root/shares/ab/cd/<pack id hex>.<index>`, indexed in SQLite.

    One lock serialises every call, so threads from `trio.to_thread` may call
    concurrently, except the writing of a new share's file, which runs beside
    other calls (see `put`); an exclusive `flock` on `root/lock` keeps a second process
    (a second peer on the same home) from opening the store and reconciling
    away files the first is still writing.
    """

    def __init__(self, root: Path, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative, got {capacity}")
        self._root = Path(root)
        self._capacity = capacity
        self._shares_dir = self._root / "shares"
        self._shares_dir.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()
        # New shares whose files are being written outside the lock, and the signal that
        # one is done: a second put of the same share waits for the first.
        self._writing: set[ShareKey] = set()
        self._written = threading.Condition(self._mutex)
        self._lock_fd = self._acquire_lock()
        self._corrupt_dropped = 0
        try:
            self._db = sqlite3.connect(
                self._root / "index.sqlite3", isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(shares)")}
            if "merkle" not in columns:  # rows written before version 2 keep a flat digest
                self._db.execute("ALTER TABLE shares ADD COLUMN merkle INTEGER NOT NULL DEFAULT 0")
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            self.recovered = self._reconcile()
            self._used = int(
                self._db.execute("SELECT COALESCE(SUM(size), 0) FROM shares").fetchone()[0]
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self._db.close()
            os.close(self._lock_fd)
            raise

    def _acquire_lock(self) -> int:
        fd = os.open(self._root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"share store {self._root} is in use by another process; "
                "stop the other peer or give this one its own --home"
            ) from None
        return fd

    def __enter__(self) -> FileShareStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the index and release the process lock (idempotent)."""
        with self._mutex:
            if self._lock_fd < 0:
                return
            self._db.close()
            os.close(self._lock_fd)
            self._lock_fd = -1

    # -- paths ---------------------------------------------------------------

    def path_of(self, pack_id: bytes, index: int) -> Path:
        """Where a share's file lives; two levels of fan-out keep directories small."""
        hexid = pack_id.hex()
        return self._shares_dir / hexid[:2] / hexid[2:4] / f"{hexid}.{index}"

    # -- recovery ------------------------------------------------------------

    def _reconcile(self) -> dict[str, int]:
        """Make index and files agree after a crash; returns what was cleaned for the log."""
        files: dict[ShareKey, tuple[Path, int]] = {}
        temps_removed = 0
        for dirpath, _dirnames, filenames in os.walk(self._shares_dir):
            for name in filenames:
                path = Path(dirpath) / name
                if name.startswith(".") and name.endswith(".tmp"):
                    path.unlink(missing_ok=True)
                    temps_removed += 1
                    continue
                match = _SHARE_NAME.fullmatch(name)
                key = (bytes.fromhex(match.group(1)), int(match.group(2))) if match else None
                if key is None or key[1] > MAX_INDEX or self.path_of(*key) != path:
                    log.warning("share store: ignoring unexpected file %s", path)
                    continue
                files[key] = (path, path.stat().st_size)

        rows_dropped = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute("SELECT pack_id, idx, size FROM shares").fetchall()
            for pack_id, idx, size in rows:
                key = (bytes(pack_id), int(idx))
                found = files.pop(key, None)
                if found is not None and found[1] == size:
                    continue
                # A missing file, or one whose size disagrees with the row (a crash
                # while replacing it): the row cannot be trusted, so neither can the file.
                self._db.execute("DELETE FROM shares WHERE pack_id = ? AND idx = ?", key)
                rows_dropped += 1
                if found is not None:
                    found[0].unlink(missing_ok=True)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

        for path, _size in files.values():
            path.unlink(missing_ok=True)
        recovered = {
            "temps_removed": temps_removed,
            "rows_dropped": rows_dropped,
            "orphans_deleted": len(files),
        }
        if any(recovered.values()):
            log.warning(
                "share store %s recovered from an unclean stop: %d temp files removed, "
                "%d index rows without a good file dropped, %d files without a row deleted",
                self._root,
                temps_removed,
                rows_dropped,
                len(files),
            )
        return recovered

    # -- the contract ----------------------------------------------------------

    def put(
        self,
        pack_id: bytes,
        index: int,
        data: bytes,
        descriptor: bytes,
        owner: bytes,
        lease_expiry: int,
        now: int,
        root: bytes | None = None,
    ) -> None:
        """Write the file (atomically, fsynced), then commit its row; see the module docstring.

        A wrong `root` stores a share that `get` then drops as corrupt: never one served."""
        _check_put(pack_id, index, data, descriptor, owner, lease_expiry, now)
        digest = digest_of(data) if root is None else root
        key = (pack_id, index)
        path = self.path_of(pack_id, index)
        with self._mutex:
            while key in self._writing:  # the same share, put twice at once
                self._written.wait()
            row = self._db.execute(
                "SELECT owner, size, digest, lease_expiry, merkle FROM shares "
                "WHERE pack_id = ? AND idx = ?",
                key,
            ).fetchone()
            if row is not None and bytes(row[0]) != owner:
                raise _owner_conflict(pack_id, index)
            same = row is not None and (
                bytes(row[2]) == digest if row[4] else _flat_digest(data) == bytes(row[2])
            )
            if same:
                if not self._file_matches(path, bytes(row[2]), row[4]):
                    # The held copy rotted or vanished: the re-put heals it in place.
                    self._write_share(path, data)
                if lease_expiry >= row[3]:
                    self._db.execute(
                        "UPDATE shares SET descriptor = ?, lease_expiry = ? "
                        "WHERE pack_id = ? AND idx = ?",
                        (descriptor, lease_expiry, pack_id, index),
                    )
                return
            old_size = int(row[1]) if row is not None else 0
            if self._used - old_size + len(data) > self._capacity:
                raise _full_error(len(data), self._used - old_size, self._capacity)
            if row is not None:
                # A held share replaced, all under the lock: no reader sees it half done.
                # A failed replace leaves the old row, which `get` then finds corrupt.
                self._write_share(path, data)
                self._insert_row(key, data, descriptor, owner, lease_expiry, now, digest)
                self._used += len(data) - old_size
                return
            # Counted from here, so puts at once cannot overfill the store.
            self._used += len(data)
            self._writing.add(key)
        # A new share's file is written and synced without the lock, so the shares of
        # several packs arriving at once wait for the disk side by side, not in turn.
        # No row names it until it is durable, so no reader looks for it meanwhile,
        # and a crash leaves a file without a row, which opening the store deletes.
        try:
            self._write_share(path, data)
            with self._mutex:
                self._insert_row(key, data, descriptor, owner, lease_expiry, now, digest)
        except BaseException:
            with self._mutex:  # no row, no file, no bytes counted
                self._used -= len(data)
                path.unlink(missing_ok=True)
            raise
        finally:
            with self._mutex:
                self._writing.discard(key)
                self._written.notify_all()

    def _insert_row(
        self,
        key: ShareKey,
        data: bytes,
        descriptor: bytes,
        owner: bytes,
        lease_expiry: int,
        now: int,
        digest: bytes,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO shares "
            "(pack_id, idx, size, owner, lease_expiry, stored_at, descriptor, digest, merkle) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
            (*key, len(data), owner, lease_expiry, now, descriptor, digest),
        )

    def _write_share(self, path: Path, data: bytes) -> None:
        """Write a share's file atomically, creating its fan-out directories, all durable
        before this returns.

        The directories are synced after the file, not each as it is made: on a
        journaling file system the file's sync commits the new directories with it,
        and the later syncs of their parents find nothing left to commit. Synced one
        by one, a fresh store paid four journal commits per share instead of two."""
        missing: list[Path] = []
        directory = path.parent
        while not directory.exists() and directory != self._shares_dir:
            missing.append(directory)
            directory = directory.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
        write_atomically(path, data)
        for created in missing:
            _fsync_dir(created.parent)

    @staticmethod
    def _file_matches(path: Path, digest: bytes, merkle: int) -> bool:
        try:
            return _matches(path.read_bytes(), digest, merkle)
        except FileNotFoundError:
            return False

    def get(self, pack_id: bytes, index: int) -> StoredShare | None:
        """The share if its file still hashes to the recorded digest; else drop it, return None."""
        _check_key(pack_id, index)
        with self._mutex:
            row = self._db.execute(
                "SELECT owner, lease_expiry, stored_at, descriptor, digest, merkle "
                "FROM shares WHERE pack_id = ? AND idx = ?",
                (pack_id, index),
            ).fetchone()
            if row is None:
                return None
            path = self.path_of(pack_id, index)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = None
            if data is None or not _matches(data, bytes(row[4]), row[5]):
                log.warning(
                    "share store: share %s is %s; dropping it so it is repaired, not served",
                    _short(pack_id, index),
                    "missing" if data is None else "corrupt (digest mismatch)",
                )
                self._corrupt_dropped += 1
                self._delete_locked(pack_id, index)
                return None
            return StoredShare(
                pack_id=pack_id,
                index=index,
                data=data,
                descriptor=bytes(row[3]),
                owner=bytes(row[0]),
                lease_expiry=int(row[1]),
                stored_at=int(row[2]),
            )

    def has(self, pack_id: bytes, index: int) -> bool:
        """Whether the share is indexed; does not read or verify the data."""
        _check_key(pack_id, index)
        with self._mutex:
            row = self._db.execute(
                "SELECT 1 FROM shares WHERE pack_id = ? AND idx = ?", (pack_id, index)
            ).fetchone()
        return row is not None

    def indices(self, pack_id: bytes) -> list[int]:
        with self._mutex:
            rows = self._db.execute(
                "SELECT idx FROM shares WHERE pack_id = ? ORDER BY idx", (pack_id,)
            ).fetchall()
        return [int(r[0]) for r in rows]

    def delete(self, pack_id: bytes, index: int) -> bool:
        """Drop the row, then the file: a crash between leaves an orphan the next open removes."""
        _check_key(pack_id, index)
        with self._mutex:
            return self._delete_locked(pack_id, index)

    def _delete_locked(self, pack_id: bytes, index: int) -> bool:
        row = self._db.execute(
            "DELETE FROM shares WHERE pack_id = ? AND idx = ? RETURNING size", (pack_id, index)
        ).fetchone()
        self.path_of(pack_id, index).unlink(missing_ok=True)
        if row is None:
            return False
        self._used -= int(row[0])
        return True

    def list_shares(self) -> Iterator[ShareInfo]:
        """Every indexed share in key order (fetched up front: safe to delete while iterating)."""
        with self._mutex:
            rows = self._db.execute(
                "SELECT pack_id, idx, size, lease_expiry FROM shares ORDER BY pack_id, idx"
            ).fetchall()
        return (ShareInfo(bytes(p), int(i), int(s), int(e)) for p, i, s, e in rows)

    def renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None = None
    ) -> int:
        """Set the lease of `owner`'s shares of `pack_id`; others' shares are untouched."""
        _check_key(pack_id, 0)
        _check_owner(owner)
        _check_time("lease_expiry", lease_expiry)
        with self._mutex:
            cursor = self._db.execute(
                "UPDATE shares SET lease_expiry = ?, descriptor = coalesce(?, descriptor) "
                "WHERE pack_id = ? AND owner = ?",
                (lease_expiry, descriptor, pack_id, owner),
            )
            return cursor.rowcount

    def expired(self, now: int) -> list[ShareKey]:
        """Keys whose lease has run out, soonest first."""
        _check_time("now", now)
        with self._mutex:
            rows = self._db.execute(
                "SELECT pack_id, idx FROM shares WHERE lease_expiry <= ? "
                "ORDER BY lease_expiry, pack_id, idx",
                (now,),
            ).fetchall()
        return [(bytes(p), int(i)) for p, i in rows]

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def capacity(self) -> int:
        return self._capacity

    def stats(self) -> dict[str, int]:
        """Counts and byte totals for status output and metrics, plus what recovery cleaned."""
        with self._mutex:
            shares, packs, owners = self._db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT pack_id), COUNT(DISTINCT owner) FROM shares"
            ).fetchone()
        result = {
            "shares": int(shares),
            "packs": int(packs),
            "owners": int(owners),
            "used_bytes": self._used,
            "capacity": self._capacity,
            "free_bytes": max(0, self._capacity - self._used),
            "corrupt_dropped": self._corrupt_dropped,
        }
        result.update({f"recovered_{name}": count for name, count in self.recovered.items()})
        return result
