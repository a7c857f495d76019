"""A peer's real share store: one file per share, one index row per file, safe against
a kill -9 at any point and against a second process opening the same home.

Crash safety comes from ordering: a share file is complete and fsynced before its
index row commits, and the commit itself is synced before `put` returns, so what a
sender was told is stored survives a power cut. Each file carries its owner's signed
descriptor in a small header (`p2pbackup.store.framing`), so on open a file the index
does not know is checked and indexed again, never deleted while it verifies (see
`p2pbackup.store.recovery`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from p2pbackup.base.sizes import format_size
from p2pbackup.codec.erasure import block_count
from p2pbackup.store import framing, layout
from p2pbackup.store.admission import (
    Held,
    PutStep,
    digest_of,
    flat_digest,
    matches,
    plan_put,
    proof_of,
    proven,
    short,
    tree_of,
)
from p2pbackup.store.contract import (
    BlockProof,
    Lease,
    ShareInfo,
    ShareKey,
    StoredShare,
    StoreFull,
    StoreLocked,
)
from p2pbackup.store.fresh_proofs import FreshLeaves, proven_from_leaves
from p2pbackup.store.group_commit import GroupCommit
from p2pbackup.store.index import Row, ShareIndex
from p2pbackup.store.quota import ShareStore
from p2pbackup.store.recovery import reconcile

log = logging.getLogger("p2pbackup.store.shares")  # the name log lines have always carried
# What the store leaves free on its disk, for its index, its headers and the rest of the
# home: a share that would eat into it is refused as "disk full" before it is written.
DISK_RESERVE = 4 * 2**20
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NewRow = tuple[StoredShare, bytes, int]  # a new share, its digest, its header's length


class FileShareStore(ShareStore):
    """Shares as files under `root/shares/ab/cd/<pack id hex>.<index>.<owner hex>`,
    indexed in SQLite.

    Threads from `trio.to_thread` may call concurrently: one lock serialises what
    changes the store, while a new share's file is written, lookups, proofs and serving
    read committed rows beside it (decision 0057); an exclusive `flock` on `root/lock`
    keeps a second process (a second peer on the same home) from opening the store."""

    def __init__(
        self, root: Path, capacity: int, owner_quota: int | None = None, *, _sync: str = "FULL"
    ) -> None:
        super().__init__(capacity, owner_quota)
        self._root = Path(root)
        self._shares_dir = self._root / "shares"
        self._shares_dir.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.RLock()
        # New shares whose files are being written outside the lock, and the signal that
        # one is done: a second put of the same share waits for the first.
        self._writing: set[ShareKey] = set()
        self._writing_bytes = 0  # theirs, not on the disk yet: a full disk counts them
        self._written = threading.Condition(self._mutex)
        self._fresh = FreshLeaves()  # for the audit that follows a put
        self._lock_fd = self._acquire_lock()
        try:
            self._index = ShareIndex(self._root / "index.sqlite3", _sync=_sync)
            # Commits take the index's writing lock, not the store's: a put or an audit
            # of another share goes on while one syncs (decision 0057).
            self._rows: GroupCommit[NewRow] = GroupCommit(self._index.writing, self._insert_rows)
            # The index, the lock and the shares directory may have just been created:
            # their names are made durable before anything stored in them is acknowledged.
            layout.fsync_dir(self._root)
        except BaseException:
            os.close(self._lock_fd)
            raise
        try:
            self.recovered = reconcile(self._root, self._shares_dir, self._index)
            for owner, size in self._index.usage().items():
                self._account(owner, size)
        except BaseException:
            with contextlib.suppress(Exception):
                self._index.close()
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

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the index and release the process lock (idempotent)."""
        with self._mutex:
            if self._lock_fd < 0:
                return
            self._index.close()
            os.close(self._lock_fd)
            self._lock_fd = -1

    def path_of(self, pack_id: bytes, index: int, owner: bytes) -> Path:
        """Where a share's file lives; two levels of fan-out keep directories small."""
        return layout.path_of(self._shares_dir, ShareKey(pack_id, index, owner))

    # -- the put path ----------------------------------------------------------

    def _put(self, share: StoredShare, root: bytes | None) -> None:
        """Write the file (atomically, fsynced), then commit its row.

        A wrong `root` stores a share that `get` then drops as corrupt: never one served."""
        digest = digest_of(share.data, tree_of(share.descriptor)) if root is None else root
        key = _key(share)
        with self._mutex:
            while key in self._writing:  # the same share, put twice at once
                self._written.wait()
            row = self._index.row(key)
            step = plan_put(share, _held(row, share.data, digest), self._room(share.owner))
            if row is not None and step in (PutStep.KEEP, PutStep.EXTEND):
                self._refresh(share, row, step)
                return
            self._check_disk(len(share.data))
            if row is not None:
                # A held share replaced, all under the lock: no reader sees it half done.
                # A failed replace leaves the old row, which `get` then finds corrupt.
                self._write(share, digest)
                self._account(share.owner, len(share.data) - row.size)
                return
            # Counted from here, so puts at once cannot overfill the store.
            self._account(share.owner, len(share.data))
            self._writing.add(key)
            self._writing_bytes += len(share.data)
        self._add(share, digest)

    def disk_free(self) -> int:
        """Bytes free on the disk that holds the shares, for this process's user."""
        return shutil.disk_usage(self._shares_dir).free

    @property
    def free_bytes(self) -> int:
        """What this store can still take: its capacity or its disk, whichever is less."""
        with self._mutex:
            on_disk = self.disk_free() - DISK_RESERVE - self._writing_bytes
        return max(0, min(super().free_bytes, on_disk))

    def _check_disk(self, needed: int) -> None:
        """Refuse a share the disk has no room for (what is being written counted), with
        a reason the owner is told, before any byte of it is written."""
        free = self.disk_free() - DISK_RESERVE - self._writing_bytes
        if needed > free:
            raise _disk_full(needed, max(0, free))

    def _refresh(self, share: StoredShare, row: Row, step: PutStep) -> None:
        """A re-put of a held share: heal its file if it rotted, take a later lease."""
        key = _key(share)
        path = layout.path_of(self._shares_dir, key)
        data = layout.read_share(path, row.header)
        if data is None or not matches(data, row.digest, row.merkle):
            # The held copy rotted or vanished: the re-put heals it in place, under
            # the header the row describes.
            held = StoredShare(
                *key[:2], share.data, row.descriptor, key.owner, row.lease_expiry, row.stored_at
            )
            head = framing.header(held)
            layout.write_share(self._shares_dir, path, share.data, head)
            if len(head) != row.header:
                self._index.set_header(key, len(head))
        if step is PutStep.EXTEND:
            self._index.extend(share)

    def _write(self, share: StoredShare, digest: bytes, *, fresh: bool = False) -> None:
        """The file, durable, then the row that names it (`fresh`: no row names it yet)."""
        path = layout.path_of(self._shares_dir, _key(share))
        head = framing.header(share)
        try:
            layout.write_share(self._shares_dir, path, share.data, head, fresh=fresh)
            if fresh:  # a new row: it may commit with those of shares arriving beside it
                self._rows.add((share, digest, len(head)))
            else:
                with self._mutex:
                    self._index.insert(share, digest, len(head))
        except OSError as exc:  # the disk filled under us: a refusal, not a fault
            if exc.errno not in _DISK_FULL:
                raise
            raise _disk_full(len(share.data), self.disk_free()) from None
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc):
                raise
            path.unlink(missing_ok=True)
            raise _disk_full(len(share.data), self.disk_free()) from None

    def _insert_rows(self, rows: list[NewRow]) -> None:
        """The rows of new shares whose files are durable, in one transaction."""
        with self._index.transaction():
            for share, digest, header in rows:
                self._index.insert(share, digest, header)

    def _add(self, share: StoredShare, digest: bytes) -> None:
        """Store a new share whose bytes `_put` has already counted.

        Its file is written and synced without the lock, so the shares of several
        packs arriving at once wait for the disk side by side, not in turn. No row
        names it until it is durable, so no reader looks for it meanwhile, and a
        crash leaves a file without a row, which opening the store indexes again."""
        key = _key(share)
        try:
            self._write(share, digest, fresh=True)
        except BaseException:
            with self._mutex:  # no row, no file, no bytes counted
                self._account(share.owner, -len(share.data))
                layout.path_of(self._shares_dir, key).unlink(missing_ok=True)
            raise
        finally:
            with self._mutex:
                self._writing.discard(key)
                self._writing_bytes -= len(share.data)
                self._written.notify_all()

    # -- reading and collecting ----------------------------------------------

    def _get(self, key: ShareKey) -> StoredShare | None:
        """The share if its file still hashes to the recorded digest; else drop it."""
        with self._mutex:
            row = self._index.row(key)
            if row is None:
                return None
            path = layout.path_of(self._shares_dir, key)
            data = layout.read_share(path, row.header)
            if data is not None and not matches(data, row.digest, row.merkle):
                found = self._reindexed(key, row, layout.read_share(path))
                if found is not None:
                    return found
            if data is None or not matches(data, row.digest, row.merkle):
                log.warning(
                    "share store: share %s is %s; dropping it so it is repaired, not served",
                    short(*key),
                    "missing" if data is None else "corrupt (digest mismatch)",
                )
                self._corrupt_dropped += 1
                self._delete(key)
                return None
            return StoredShare(
                key.pack_id,
                key.idx,
                data,
                row.descriptor,
                key.owner,
                row.lease_expiry,
                row.stored_at,
            )

    def _serve(self, key: ShareKey) -> StoredShare | None:
        """The file's bytes, not hashed: whoever fetches a share checks it against the
        root its owner signed, and audits find rot (decision 0057). A file that is gone
        or of the wrong length takes the checking `get`, which drops it."""
        row = self._index.row(key)
        data = None if row is None else layout.read_share(self.path_of(*key), row.header)
        if row is None or data is None or len(data) != row.size:
            return None if row is None else self._get(key)
        lease_and_stored_at = row[1:3]
        return StoredShare(*key[:2], data, row.descriptor, key.owner, *lease_and_stored_at)

    def _prove(self, key: ShareKey, block: int) -> BlockProof | None:
        """The first audit after a put reads and hashes one block, its path made from the
        leaves the put kept (`fresh_proofs`). Any other takes one read and one hash: the
        proof's own path checks the whole file against its row (see `proven`). Neither
        takes the store's lock: the row is the committed one, and a file replaced or
        deleted meanwhile fails its check. A file that fails, or a row with a flat
        digest, takes the checking `get`, which drops a rotted share or indexes a
        replacement again."""
        row = self._index.row(key)
        if row is None or not 0 <= block < block_count(row.size):
            return None
        leaves = self._fresh.take(key)
        path = layout.path_of(self._shares_dir, key)
        if leaves is not None and row.merkle:
            found = proven_from_leaves(path, row, block, leaves)
            if found is not None:
                return found
        if row.merkle:
            data = layout.read_share(path, row.header)
            found = None if data is None else proven(data, row.digest, block, row.merkle)
            if found is not None:
                return found
        share = self._get(key)
        return None if share is None else proof_of(share.data, block, tree_of(share.descriptor))

    def _keep_leaves(self, key: ShareKey, leaves: list[bytes]) -> None:
        self._fresh.keep(key, leaves)

    def _lease(self, key: ShareKey) -> Lease | None:
        """From the row alone: renewing a lease read and hashed the whole share before."""
        row = self._index.row(key)
        return None if row is None else Lease(row.descriptor, row.lease_expiry)

    def _reindexed(self, key: ShareKey, row: Row, blob: bytes | None) -> StoredShare | None:
        """A file that disagrees with its row but verifies by its own header: a crash
        cut a replacement between its file and its row, and the file is the share."""
        found = None if blob is None else framing.verified(key, blob)
        if found is None:
            return None
        self._index.insert(found.share, found.root, found.header_bytes)
        self._account(key.owner, len(found.share.data) - row.size)
        return found.share

    def _has(self, key: ShareKey) -> bool:
        return self._index.has(key)

    def _indices(self, pack_id: bytes, owner: bytes | None) -> list[int]:
        return self._index.indices(pack_id, owner)

    def _delete(self, key: ShareKey) -> bool:
        """Unlink the file, then drop the row: a crash between leaves a row without a
        file, which the next open drops. (Dropped the other way round, the file would
        verify and be indexed again.)"""
        with self._mutex:
            self._fresh.drop(key)
            layout.path_of(self._shares_dir, key).unlink(missing_ok=True)
            size = self._index.delete(key)
            if size is None:
                return False
            self._account(key.owner, -size)
            return True

    def list_shares(self) -> Iterator[ShareInfo]:
        """Every indexed share in key order (fetched up front: safe to delete while iterating)."""
        with self._mutex:
            return iter(self._index.listing())

    def _renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None
    ) -> int:
        with self._mutex:
            return self._index.renew(pack_id, owner, lease_expiry, descriptor)

    def _expired(self, now: int) -> list[ShareKey]:
        with self._mutex:
            return self._index.expired(now)

    def _census(self) -> tuple[int, int, int]:
        with self._mutex:
            return self._index.census()

    def stats(self) -> dict[str, int]:
        """Counts and byte totals for status output and metrics, plus what recovery cleaned."""
        result = super().stats()
        result.update({f"recovered_{name}": count for name, count in self.recovered.items()})
        return result


def _held(row: Row | None, data: bytes, digest: bytes) -> Held | None:
    """What a put needs of the held row; a row of schema version 1 is compared by
    hashing the incoming bytes flat, as it was stored."""
    if row is None:
        return None
    same = row.digest == (digest if row.merkle else flat_digest(data))
    return Held(row.size, row.lease_expiry, same)


def _disk_full(needed: int, free: int) -> StoreFull:
    return StoreFull(
        f"disk full: {format_size(free)} free on this peer's disk, {format_size(needed)} needed"
    )


def _key(share: StoredShare) -> ShareKey:
    return ShareKey(share.pack_id, share.index, share.owner)
