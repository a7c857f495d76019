"""The backup run: its steps, and the walk that saves each file and folder.

A run checks its paths, walks them with the scanner listing and reading a
little ahead, saves each file (an unchanged one from the catalog, a changed one
chunked and sealed) and each folder as a tree, then sends the last packs,
writes the index blobs and returns the snapshot. File reading and the
CPU-heavy steps run through `run_sync` (a worker thread on a real peer, inline
in the simulator), a big file's chunks through `work_sync` (see there). Which
chunks are packed is `packing`'s job; how packs reach the mesh and what the
catalog learns as they land is `uploads`'; the counts and progress reports are
`progress`'.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import trio

from p2pbackup.backup.blobs import BlobCodec, ChunkReader
from p2pbackup.backup.catalog import Catalog, ChunkList, FileState
from p2pbackup.backup.packing import Packing
from p2pbackup.backup.progress import BackupStats, ProgressFn, Reporter
from p2pbackup.backup.scan import (
    LISTINGS_AHEAD,
    Listing,
    Prepared,
    Scanner,
    file_state,
    opened_state,
)
from p2pbackup.backup.snapshot import SNAPSHOT_ID_BYTES, Locator, Snapshot
from p2pbackup.backup.tree import EntryKind, Tree, TreeEntry, Xattrs
from p2pbackup.backup.uploads import INDEX_BLOB_ENTRIES, Uploads, plain_error
from p2pbackup.backup.walk import FsEntry, backup_roots, stat_root
from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.packstore import PackStore

# A file changed this recently before a run began (or during it) is saved but not
# remembered: a write in the same tick of the file system's clock as the state the
# run took would leave that state as it was, and later runs would skip the file for
# good (Git calls such files "racily clean"). Two seconds cover the coarsest clocks
# in use (FAT keeps mtimes to 2 s); the cost is one more read of files just written.
RACY_SECONDS = 2.0


@dataclass(frozen=True)
class _Walk:
    """What the tree walk threads through: the upload nursery and the scanner ahead of it."""

    uploads: trio.Nursery
    scanner: Scanner
    listings: trio.MemoryReceiveChannel[Listing]


class BackupEngine:
    """One owner's backup runs against one catalog and one pack store.

    `run` may be called more than once (one run at a time); `stats` describes the
    latest run."""

    def __init__(
        self,
        codec: BlobCodec,
        catalog: Catalog,
        packs: PackStore,
        *,
        run_sync: RunSync = to_thread,
        work_sync: RunSync | None = None,
        progress: ProgressFn | None = None,
        excludes: tuple[str, ...] = (),
        parallel_uploads: int = 4,
        now: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        index_entries: int = INDEX_BLOB_ENTRIES,
        racy_seconds: float = RACY_SECONDS,
    ) -> None:
        if parallel_uploads < 1:
            raise ValueError("parallel_uploads must be at least 1")
        if index_entries < 1:
            raise ValueError("index_entries must be at least 1")
        self.codec = codec
        self.catalog = catalog
        self.packs = packs
        self.run_sync = run_sync
        # Where each chunk of a file read chunk by chunk is read, hashed and sealed
        # (files bigger than the read-ahead's): the engine process gives them a worker
        # thread, so its event loop feeds the pipe and commits placed packs meanwhile;
        # the simulator keeps them inline. Windows of small files stay on `run_sync`:
        # about seven hand-offs of the interpreter lock per small file cost more CPU
        # than the overlap saved (decisions 0008 and 0058).
        self.work_sync = run_sync if work_sync is None else work_sync
        self.progress = progress
        self.excludes = excludes
        self.parallel_uploads = parallel_uploads
        self.index_entries = index_entries
        self.racy_seconds = racy_seconds
        self.now = now
        # Where snapshot ids come from: a seeded source replays a run exactly.
        self.random_bytes = random_bytes
        self.stats = BackupStats()
        self._slots = trio.CapacityLimiter(parallel_uploads)
        self._reset()

    @property
    def placed(self) -> set[bytes]:
        """Ids of the packs the latest run placed."""
        return self._uploads.placed

    def _reset(self) -> None:
        self.stats = BackupStats()
        self._settled_ns = 0  # set when a run begins: see `_remember_unless_changed`
        self._reporter = Reporter(self.progress)
        self._uploads = Uploads(
            self.codec,
            self.catalog,
            self.packs,
            self.run_sync,
            self._slots,
            self.stats,
            self._reporter,
            self.index_entries,
        )
        self._packing = Packing(self._uploads, seal_sync=self.work_sync)
        self._prepared: dict[bytes, Prepared | OSError] = {}  # small files read ahead
        self._known: dict[bytes, ChunkList] = {}  # unchanged files the scanner found
        self._links: dict[tuple[int, int], int] = {}  # link group by (st_dev, st_ino)

    async def run(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        host: str,
        tags: tuple[str, ...] = (),
        parent: Snapshot | None = None,
    ) -> Snapshot:
        """Back up `paths` (each saved under its final name) and return the snapshot.

        Raises `P2PBackupError` when a path is missing or a pack cannot be placed;
        files that cannot be read are left out and listed in `stats.errors`."""
        self._reset()
        # Files whose mtime and ctime are both before this are remembered.
        self._settled_ns = int((self.now() - self.racy_seconds) * 1_000_000_000)
        self._packing.began_empty = not self.catalog.holds_chunks()
        roots, names = backup_roots(paths)
        with self.catalog.synced_once():
            try:
                async with trio.open_nursery() as uploads:
                    root_tree = await self._save_roots(uploads, roots, names)
                    await self._packing.flush(uploads)
                    await self._uploads.store_index(uploads)
                self._uploads.remember_ready(force=True)
                self._uploads.record_index()
            except BaseExceptionGroup as group:
                raise plain_error(group) from None
            finally:
                # Even a failed run keeps what it learnt: files whose chunks are all
                # placed are not read again by the next run.
                self._uploads.remember_ready(force=True)
        snapshot = Snapshot(
            snapshot_id=self.random_bytes(SNAPSHOT_ID_BYTES),
            time=self.now(),
            host=host,
            paths=tuple(os.fsdecode(r) for r in roots),
            tags=tuple(tags),
            parent=parent.snapshot_id if parent else None,
            tree=root_tree,
            # Every index blob this owner ever wrote: a snapshot may reuse any chunk.
            index=tuple(self.catalog.index_blobs()),
            files=self.stats.files,
            size=self.stats.bytes,
        )
        await self._report(force=True)
        return snapshot

    async def repack(self, blobs: AsyncIterator[tuple[bytes, bytes]]) -> list[Locator]:
        """Pack these sealed blobs afresh, place them and index them; returns the new
        index blobs.

        The blobs stay sealed: repacking moves ciphertext and needs no decryption.
        The catalog learns each blob's new location as its pack is placed; the
        caller publishes the index blobs before it releases the old packs, and
        never releases a pack in `placed`: the same blobs in the same order make
        the same pack, so a repack run again after a crash rewrites the pack id
        the crashed run placed."""
        self._reset()
        try:
            async with trio.open_nursery() as uploads:
                async for chunk_id, sealed in blobs:
                    await self._packing.add_sealed(uploads, chunk_id, sealed, held=False)
                await self._packing.flush(uploads)
                await self._uploads.store_index(uploads)
            self._uploads.record_index()
        except BaseExceptionGroup as group:
            raise plain_error(group) from None
        return list(self._uploads.index_written)

    # ---- the tree walk -------------------------------------------------

    async def _save_roots(
        self, uploads: trio.Nursery, roots: list[bytes], names: list[bytes]
    ) -> bytes:
        """Save every root, with the scanner listing and reading a little ahead of the
        walk; the id of the tree that lists the roots."""
        tops = [
            dataclasses.replace(await self.run_sync(stat_root, root), name=name)
            for root, name in zip(roots, names, strict=True)
        ]
        async with trio.open_nursery() as scanning:
            send, listings = trio.open_memory_channel[Listing](LISTINGS_AHEAD)
            scanner = Scanner(
                self.codec,
                self.catalog,
                self.run_sync,
                self.excludes,
                claims=self._packing.claims,
                look_up=self.catalog.remembers_files(),
            )
            self._packing.scanner = scanner
            scanning.start_soon(scanner.scan, tops, send, scanning)
            walk = _Walk(uploads, scanner, listings)
            entries = []
            for top in tops:
                saved = await self._save_entry(walk, top, scanned=False)
                if saved is not None:
                    entries.append(saved)
        return await self._packing.store_tree(uploads, Tree(tuple(entries)))

    async def _save_entry(
        self, walk: _Walk, entry: FsEntry, *, scanned: bool = True
    ) -> TreeEntry | None:
        if entry.kind is EntryKind.DIR:
            return await self._save_dir(walk, entry)
        if entry.kind is EntryKind.FILE:
            return await self._save_file(walk.uploads, entry, scanned)
        if entry.kind is None:
            self.stats.errors.append((os.fsdecode(entry.path), "an unknown kind of file"))
            return None
        link, xattrs = self._kept(entry)
        return TreeEntry(
            entry.name,
            entry.kind,
            entry.mode,
            entry.mtime_ns,
            target=entry.target,
            rdev=entry.rdev,
            link=link,
            xattrs=xattrs,
        )

    def _kept(self, entry: FsEntry) -> tuple[int, Xattrs]:
        """An entry's hard-link group (0: none) and its extended attributes; attributes
        that could not be read are listed as errors."""
        if entry.xattr_error is not None:
            self.stats.errors.append((os.fsdecode(entry.path), entry.xattr_error))
        link = 0
        if entry.nlink > 1 and entry.kind is not EntryKind.DIR:
            # Numbered in walk order: an unchanged tree gets the same numbers next run.
            link = self._links.setdefault((entry.device, entry.inode), len(self._links) + 1)
        return link, entry.xattrs

    async def _save_dir(self, walk: _Walk, entry: FsEntry) -> TreeEntry | None:
        # The scanner lists folders in this same depth-first order.
        listing = await walk.listings.receive()
        if listing.error is not None:
            exc = listing.error
            self.stats.errors.append((os.fsdecode(entry.path), exc.strerror or str(exc)))
            return None
        saved = []
        for window in listing.windows:
            # Memory holds the windows the scanner read ahead, whatever the folder's size.
            prepared = await walk.scanner.take(window)
            self._prepared.update(prepared)
            self._known.update(window.known)
            self._packing.note_fresh(prepared)
            for child in window.entries:
                if child.kind is EntryKind.FILE:  # most entries: one call fewer each
                    result = await self._save_file(walk.uploads, child, True)
                else:
                    result = await self._save_entry(walk, child)
                if result is not None:
                    saved.append(result)
        self.stats.dirs += 1
        subtree = await self._packing.store_tree(walk.uploads, Tree(tuple(saved)))
        _, xattrs = self._kept(entry)
        return TreeEntry(
            entry.name, EntryKind.DIR, entry.mode, entry.mtime_ns, subtree=subtree, xattrs=xattrs
        )

    async def _save_file(
        self, uploads: trio.Nursery, entry: FsEntry, scanned: bool
    ) -> TreeEntry | None:
        # The scanner looked every file in a folder up in the catalog; a top-level
        # file is looked up here.
        known = self._known.pop(entry.path, None)
        if known is None and not scanned:
            known = self.catalog.file_chunks(entry.path, file_state(entry))
        if known is not None:
            chunks = known
            self.stats.files_unchanged += 1
            self.stats.chunks_reused += len(chunks)
        else:
            try:
                chunks = await self._read_file(uploads, entry)
            except OSError as exc:
                self.stats.errors.append((os.fsdecode(entry.path), exc.strerror or str(exc)))
                return None
        # The size is what was read: a file that grew or shrank while being read must
        # still give a tree whose chunk lengths add up to its size.
        size = sum(length for _, length in chunks)
        self.stats.files += 1
        self.stats.bytes += size
        await self._report()
        saved = TreeEntry(
            entry.name, EntryKind.FILE, entry.mode, entry.mtime_ns, size=size, chunks=chunks
        )
        if entry.nlink > 1 or entry.xattrs or entry.xattr_error:  # rare: one test for most
            link, xattrs = self._kept(entry)
            saved = dataclasses.replace(saved, link=link, xattrs=xattrs)
        return saved

    async def _read_file(self, uploads: trio.Nursery, entry: FsEntry) -> ChunkList:
        prepared = self._prepared.pop(entry.path, None)
        if isinstance(prepared, OSError):
            raise prepared
        if prepared is not None and not self._packing.lacks_seal(prepared):
            return await self._take_prepared(uploads, entry, prepared)
        # Not read ahead (a big file), or read ahead without sealing a chunk this run
        # still needs: read it here.
        chunk_ids: list[tuple[bytes, int]] = []
        packer = self._packing.packer_for(entry.size)
        reader = await self.run_sync(self.codec.open_chunker, entry.path)
        try:
            while True:
                got = await self.work_sync(_next_with_id, self.codec, reader)
                if got is None:
                    break
                chunk, chunk_id = got
                self.stats.bytes_read += len(chunk)
                await self._packing.add_blob(uploads, chunk, packer, chunk_id)
                chunk_ids.append((chunk_id, len(chunk)))
                await self._report()
        finally:
            reader.close()
        chunks = tuple(chunk_ids)
        opened = opened_state(reader)
        if opened is not None:
            self._remember_unless_changed(entry, opened, chunks)
        return chunks

    async def _take_prepared(
        self, uploads: trio.Nursery, entry: FsEntry, prepared: Prepared
    ) -> ChunkList:
        chunk_ids = []
        packing = self._packing
        for chunk_id, length, sealed in prepared.chunks:
            self.stats.bytes_read += length
            if sealed is None:
                self.stats.chunks_reused += 1  # packed or placed: `lacks_seal` said so
            else:
                for pack in packing.pack(chunk_id, sealed, chunk_id not in packing.fresh):
                    await self._uploads.upload_data(uploads, pack)
            chunk_ids.append((chunk_id, length))
        chunks = tuple(chunk_ids)
        if prepared.opened is not None:
            self._remember_unless_changed(entry, prepared.opened, chunks)
        return chunks

    def _remember_unless_changed(
        self, entry: FsEntry, opened: FileState, chunks: ChunkList
    ) -> None:
        # A file that changed between the listing and the read, or whose read came to
        # another size, is saved as read but not remembered: the next run reads it
        # again instead of trusting a mixed chunk list. One written during or after
        # the read no longer has the state remembered here, so it is read again too,
        # unless it fell in the same tick of the file system's clock: a file changed
        # just before the run is not remembered either (see `RACY_SECONDS`).
        before = file_state(entry)
        if (
            opened == before
            and sum(n for _, n in chunks) == before.size
            and max(before.mtime_ns, before.ctime_ns) < self._settled_ns
        ):
            self._uploads.remember(entry.path, before, chunks)

    async def _report(self, force: bool = False) -> None:
        await self._reporter.report(self.stats, force)


def _next_with_id(codec: BlobCodec, reader: ChunkReader) -> tuple[bytes, bytes] | None:
    """A big file's next chunk and its id, in one hand-off to the worker (reading,
    cutting and hashing all let go of the interpreter lock); None at the end."""
    chunk = reader.next_chunk()
    return None if chunk is None else (chunk, codec.chunk_id(chunk))
