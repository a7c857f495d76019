"""The backup run: walk, chunk, dedup, seal, pack, upload, and write the snapshot.

File reading and the CPU-heavy steps run through `run_sync` (a worker
thread on a real peer, inline in the simulator). Packs upload in parallel,
at most `parallel_uploads` at a time, and the walk waits for a free slot
before it finishes another pack, so memory stays at a few packs whatever
the file sizes. A pack's chunks enter the catalog only once the pack is
placed, so a killed backup, run again, sends only what is missing; the run
then indexes every chunk no placed index blob lists yet, its own and any a
killed run left behind. The index blobs go out while the last data packs are
still being placed, and count only once every one of those is.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cbor2
import trio

from p2pbackup.backup.blobs import BlobCodec, Pack, Packer
from p2pbackup.backup.catalog import Catalog, ChunkList, FileState, IndexPack
from p2pbackup.backup.progress import ProgressFn, Reporter, RunStats
from p2pbackup.backup.scan import (
    LISTINGS_AHEAD,
    PACKED,
    Claims,
    Listing,
    Prepared,
    Scanner,
    file_state,
    opened_state,
)
from p2pbackup.backup.snapshot import SNAPSHOT_ID_BYTES, Locator, Snapshot
from p2pbackup.backup.tree import EntryKind, Tree, TreeEntry
from p2pbackup.backup.walk import FsEntry, absolute, stat_entry
from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.packstore import PackReceipt, PackStore
from p2pbackup.errors import P2PBackupError

T = TypeVar("T")
# One index blob lists at most this many chunks (about 3 MiB of CBOR): a huge first
# backup writes several blobs that pack and place like any other data, not one giant one.
INDEX_BLOB_ENTRIES = 50_000
# Unchanged-file rows are written to the catalog in batches of about this many.
REMEMBER_BATCH = 1000
# A file changed this recently before a run began (or during it) is saved but not
# remembered: a write in the same tick of the file system's clock as the state the
# run took would leave that state as it was, and later runs would skip the file for
# good (Git calls such files "racily clean"). Two seconds cover the coarsest clocks
# in use (FAT keeps mtimes to 2 s); the cost is one more read of files just written.
RACY_SECONDS = 2.0

OnPlaced = Callable[[Pack, PackReceipt], None]


@dataclass
class BackupStats(RunStats):
    PROBLEMS = "errors"

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    bytes_read: int = 0
    bytes_sent: int = 0
    chunks_new: int = 0
    chunks_reused: int = 0
    files_unchanged: int = 0
    packs: int = 0
    index_blobs: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Walk:
    """What the tree walk threads through: the upload nursery and the scanner ahead of it."""

    uploads: trio.Nursery
    scanner: Scanner
    listings: trio.MemoryReceiveChannel[Listing]


@dataclass(eq=False)
class _WaitingFile:
    """A file read this run whose state the catalog learns once all its chunks are placed."""

    path: bytes
    state: FileState
    chunks: ChunkList
    missing: set[bytes]


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out += _leaves(exc)
        else:
            out.append(exc)
    return out


def _plain_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error a caller can act on, out of a nursery's exception group.

    A failed upload cancels the walk and the other uploads; callers (and the CLI)
    expect the `P2PBackupError` that says why, not a group around it."""
    real = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
    if real and all(isinstance(e, P2PBackupError) for e in real):
        return real[0]
    if len(real) == 1:
        return real[0]
    return group


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
        self.progress = progress
        self.excludes = excludes
        self.parallel_uploads = parallel_uploads
        self.index_entries = index_entries
        self.racy_seconds = racy_seconds
        self.now = now
        # Where snapshot ids come from: a seeded source replays a run exactly.
        self.random_bytes = random_bytes
        self.stats = BackupStats()
        self._uploads = trio.CapacityLimiter(parallel_uploads)
        self._reset()

    def _reset(self) -> None:
        self.stats = BackupStats()
        self._packer: Packer = self.codec.packer()
        # Folder lists go to packs of their own: a restore or `ls` walks every tree
        # before it needs any file data, and fetched the data packs for them.
        self._tree_packer: Packer = self.codec.packer()
        self._settled_ns = 0  # set when a run begins: see `_remember_unless_changed`
        self._pending: set[bytes] = set()  # chunk ids packed this run but not yet placed
        self._claims: Claims = {}  # chunk id -> where in walk order it is first sealed
        self._waiting: dict[bytes, list[_WaitingFile]] = {}  # pending chunk id -> its files
        self._ready: list[tuple[bytes, FileState, ChunkList]] = []  # files to remember
        self._prepared: dict[bytes, Prepared | OSError] = {}  # small files read ahead
        self._known: dict[bytes, ChunkList] = {}  # unchanged files the scanner found
        # Read-ahead chunks neither the mesh nor this run had when their window was taken.
        self._fresh: set[bytes] = set()
        self._index_written: list[Locator] = []  # index blobs this run placed
        # Data packs handed to the mesh and not placed yet: pack id -> its chunks.
        self._in_flight: dict[bytes, list[tuple[bytes, Locator]]] = {}
        # Uploads spawned, and those that have begun handing their pack to the store.
        self._uploads_spawned = 0
        self._uploads_begun = 0
        # Index packs placed this run, recorded once every data pack is, and the data
        # packs their blobs list.
        self._index_placed: list[IndexPack] = []
        self._indexing: list[bytes] = []
        self.placed: set[bytes] = set()  # ids of the packs this run placed
        self._reporter = Reporter(self.progress)
        # Whether the mesh holds exactly what this run placed: see `_held`.
        self._began_empty = False
        self._scanner: Scanner | None = None

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
        self._began_empty = not self.catalog.holds_chunks()
        roots = [absolute(Path(os.fspath(p))) for p in paths]
        if not roots:
            raise P2PBackupError("name at least one path to back up")
        names = [os.path.basename(r.rstrip(b"/")) or b"root" for r in roots]
        if len(set(names)) != len(names):
            raise P2PBackupError("two backup paths share a final name; back them up separately")
        for root in roots:
            if not os.path.lexists(root):
                raise P2PBackupError(f"{os.fsdecode(root)} does not exist")
        try:
            async with trio.open_nursery() as uploads:
                tops = [
                    dataclasses.replace(await self.run_sync(stat_entry, root), name=name)
                    for root, name in zip(roots, names, strict=True)
                ]
                async with trio.open_nursery() as scanning:
                    send, listings = trio.open_memory_channel[Listing](LISTINGS_AHEAD)
                    scanner = Scanner(
                        self.codec,
                        self.catalog,
                        self.run_sync,
                        self.excludes,
                        claims=self._claims,
                        look_up=self.catalog.remembers_files(),
                    )
                    self._scanner = scanner
                    scanning.start_soon(scanner.scan, tops, send, scanning)
                    walk = _Walk(uploads, scanner, listings)
                    entries = []
                    for top in tops:
                        saved = await self._save_entry(walk, top, scanned=False)
                        if saved is not None:
                            entries.append(saved)
                root_tree = await self._store_tree(uploads, Tree(tuple(entries)))
                for packer in (self._packer, self._tree_packer):
                    pack = packer.flush()
                    if pack is not None:
                        await self._upload_data(uploads, pack)
                await self._store_index(uploads)
            self._remember_ready(force=True)
            self._record_index()
        except BaseExceptionGroup as group:
            raise _plain_error(group) from None
        finally:
            # Even a failed run keeps what it learnt: files whose chunks are all placed
            # are not read again by the next run.
            self._remember_ready(force=True)
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
                    await self._add_sealed(uploads, chunk_id, sealed, held=False)
                pack = self._packer.flush()
                if pack is not None:
                    await self._upload_data(uploads, pack)
                await self._store_index(uploads)
            self._record_index()
        except BaseExceptionGroup as group:
            raise _plain_error(group) from None
        return list(self._index_written)

    # ---- the tree walk -------------------------------------------------

    async def _save_entry(
        self, walk: _Walk, entry: FsEntry, *, scanned: bool = True
    ) -> TreeEntry | None:
        if entry.kind is EntryKind.DIR:
            return await self._save_dir(walk, entry)
        if entry.kind is EntryKind.SYMLINK:
            return TreeEntry(
                entry.name, entry.kind, entry.mode, entry.mtime_ns, target=entry.target
            )
        if entry.kind is EntryKind.FILE:
            return await self._save_file(walk.uploads, entry, scanned)
        self.stats.errors.append((os.fsdecode(entry.path), "not a file, folder or symlink"))
        return None

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
            self._note_fresh(prepared)
            for child in window.entries:
                if child.kind is EntryKind.FILE:  # most entries: one call fewer each
                    result = await self._save_file(walk.uploads, child, True)
                else:
                    result = await self._save_entry(walk, child)
                if result is not None:
                    saved.append(result)
        self.stats.dirs += 1
        subtree = await self._store_tree(walk.uploads, Tree(tuple(saved)))
        return TreeEntry(entry.name, EntryKind.DIR, entry.mode, entry.mtime_ns, subtree=subtree)

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
        return TreeEntry(
            entry.name, EntryKind.FILE, entry.mode, entry.mtime_ns, size=size, chunks=chunks
        )

    async def _read_file(self, uploads: trio.Nursery, entry: FsEntry) -> ChunkList:
        prepared = self._prepared.pop(entry.path, None)
        if isinstance(prepared, OSError):
            raise prepared
        if prepared is not None and not self._lacks_seal(prepared):
            return await self._take_prepared(uploads, entry, prepared)
        # Not read ahead (a big file), or read ahead without sealing a chunk this run
        # still needs: read it here.
        chunk_ids: list[tuple[bytes, int]] = []
        reader = await self.run_sync(self.codec.open_chunker, entry.path)
        try:
            while True:
                chunk = await self.run_sync(reader.next_chunk)
                if chunk is None:
                    break
                self.stats.bytes_read += len(chunk)
                chunk_ids.append((await self._add_blob(uploads, chunk), len(chunk)))
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
        for chunk_id, length, sealed in prepared.chunks:
            self.stats.bytes_read += length
            if sealed is None:
                self.stats.chunks_reused += 1  # packed or placed: `_lacks_seal` said so
            else:
                for pack in self._pack(chunk_id, sealed, chunk_id not in self._fresh):
                    await self._upload_data(uploads, pack)
            chunk_ids.append((chunk_id, length))
        chunks = tuple(chunk_ids)
        if prepared.opened is not None:
            self._remember_unless_changed(entry, prepared.opened, chunks)
        return chunks

    def _lacks_seal(self, prepared: Prepared) -> bool:
        """Whether the read-ahead left unsealed a chunk neither the mesh nor this run has.

        It skips a chunk an earlier file claimed; that file's chunk is packed by now,
        unless its read then failed."""
        return any(
            sealed is None and cid in self._fresh and cid not in self._pending
            for cid, _, sealed in prepared.chunks
        )

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
            self._remember(entry.path, before, chunks)

    def _remember(self, path: bytes, state: FileState, chunks: ChunkList) -> None:
        """Tell the catalog about a file once every chunk of it is placed."""
        missing = {cid for cid, _ in chunks if cid in self._pending}
        if not missing:
            self._ready.append((path, state, chunks))
            self._remember_ready()
            return
        waiting = _WaitingFile(path, state, chunks, missing)
        for cid in missing:
            self._waiting.setdefault(cid, []).append(waiting)

    def _remember_ready(self, *, force: bool = False) -> None:
        if self._ready and (force or len(self._ready) >= REMEMBER_BATCH):
            self.catalog.remember_files(self._ready)
            self._ready = []

    async def _add_blob(
        self, uploads: trio.Nursery, plain: bytes, packer: Packer | None = None
    ) -> bytes:
        """Store one chunk (file data or a tree) unless the mesh or this run has it."""
        chunk_id = self.codec.chunk_id(plain)
        if chunk_id in self._pending or self._held({chunk_id}):
            self.stats.chunks_reused += 1
            return chunk_id
        sealed = await self.run_sync(self.codec.seal, chunk_id, plain)
        await self._add_sealed(uploads, chunk_id, sealed, held=False, packer=packer)
        return chunk_id

    def _note_fresh(self, prepared: dict[bytes, Prepared | OSError]) -> None:
        """Find which read-ahead chunks are new, in one catalog query per window.

        A query per chunk cost more than the lookup itself. A chunk stays fresh
        until this run packs it; any later copy is then pending or placed."""
        ids = {cid for p in prepared.values() if isinstance(p, Prepared) for cid, _, _ in p.chunks}
        ids -= self._pending
        self._fresh |= ids - self._held(ids)

    def _held(self, chunk_ids: set[bytes]) -> set[bytes]:
        """Which of these chunks, none of them pending, the mesh holds.

        When the catalog held no chunk as the run began, the mesh holds exactly the
        chunks this run packed and placed, and each of those is still claimed as
        `PACKED` unless the scanner dropped the claims: a first backup then answers
        without a catalog query per folder and per tree."""
        scanner = self._scanner
        if self._began_empty and not (scanner is not None and scanner.claims_dropped):
            return {cid for cid in chunk_ids if self._claims.get(cid) == PACKED}
        return self.catalog.known_chunks(chunk_ids)

    async def _add_sealed(
        self,
        uploads: trio.Nursery,
        chunk_id: bytes,
        sealed: bytes,
        held: bool | None = None,
        packer: Packer | None = None,
    ) -> None:
        """Pack a sealed chunk (into `packer`, by default the data packer) unless the
        mesh (`held`, looked up when None) or this run has it already."""
        for pack in self._pack(chunk_id, sealed, held, packer):
            await self._upload_data(uploads, pack)

    def _pack(
        self, chunk_id: bytes, sealed: bytes, held: bool | None, packer: Packer | None = None
    ) -> list[Pack]:
        """`_add_sealed` up to the packs it finished, which the caller uploads. Apart,
        because most chunks finish no pack and need not wait on anything."""
        if held is None:
            held = bool(self._held({chunk_id}))
        if held or chunk_id in self._pending:
            self.stats.chunks_reused += 1
            return []
        self.stats.chunks_new += 1
        self._pending.add(chunk_id)
        self._claims[chunk_id] = PACKED
        self._fresh.discard(chunk_id)
        return (packer or self._packer).add(chunk_id, sealed)

    async def _store_tree(self, uploads: trio.Nursery, tree: Tree) -> bytes:
        # A tree's encoding depends only on its entries, so an unchanged folder gives
        # the same chunk id and dedups like file data: it is not sent again.
        return await self._add_blob(uploads, tree.encode(), self._tree_packer)

    # ---- packs ---------------------------------------------------------

    async def _upload_data(self, uploads: trio.Nursery, pack: Pack) -> None:
        """Place a pack of file data or trees; the index lists it while it is on its way."""
        self._in_flight[pack.pack_id] = [
            (cid, Locator(pack.pack_id, off, length)) for cid, off, length in pack.entries
        ]
        await self._start_upload(uploads, pack, self._data_placed)

    async def _start_upload(self, uploads: trio.Nursery, pack: Pack, on_placed: OnPlaced) -> None:
        # Acquire before spawning: the walk waits here, so at most `parallel_uploads`
        # finished packs are alive besides the one the packer is filling.
        token = object()
        await self._uploads.acquire_on_behalf_of(token)
        self._uploads_spawned += 1
        uploads.start_soon(self._upload, pack, token, on_placed)

    async def _upload(self, pack: Pack, token: object, on_placed: OnPlaced) -> None:
        self._uploads_begun += 1
        try:
            receipt = await self.packs.put(pack.pack_id, pack.data)
        finally:
            self._uploads.release_on_behalf_of(token)
        on_placed(pack, receipt)
        self.placed.add(pack.pack_id)
        self.stats.packs += 1
        self.stats.bytes_sent += receipt.bytes_sent
        await self._report()

    def _data_placed(self, pack: Pack, receipt: PackReceipt) -> None:
        entries = self._in_flight.pop(pack.pack_id)
        self.catalog.record_pack(
            pack.pack_id, receipt.k, receipt.n, len(pack.data), receipt.placed, entries
        )
        for chunk_id, _ in entries:
            self._pending.discard(chunk_id)
            for waiting in self._waiting.pop(chunk_id, ()):
                waiting.missing.discard(chunk_id)
                if not waiting.missing:
                    self._ready.append((waiting.path, waiting.state, waiting.chunks))
        self._remember_ready(force=True)  # one transaction per placed pack

    async def _store_index(self, uploads: trio.Nursery) -> None:
        """Write index blobs for every chunk placed or on its way that no placed index
        blob lists yet, while the last data packs are still being placed: the end of
        a backup waited for both, one after the other.

        At most `index_entries` chunks per blob; nothing at all when every chunk is
        indexed already (an unchanged tree sends nothing). A data pack counts as
        indexed only once the packs holding its index blobs are placed and
        `_record_index` has run, after every data pack is placed: an index pack
        placed by a run whose data then failed is never recorded, and the next run
        indexes those packs' chunks."""
        # The last packs' uploads begin first: building the index is tens of
        # milliseconds of work with no await in it, and they would wait for it.
        while self._uploads_begun < self._uploads_spawned:
            await trio.lowlevel.checkpoint()
        on_way = dict(self._in_flight)
        # A pack that was on its way when the index began is listed from `on_way`.
        placed_before = [p for p in self.catalog.unindexed_packs() if p not in on_way]
        if not placed_before and not on_way:
            return
        self._indexing = [*placed_before, *on_way]
        packer = self.codec.packer()

        def placed(pack: Pack, receipt: PackReceipt) -> None:
            blobs = tuple(Locator(pack.pack_id, off, length) for _, off, length in pack.entries)
            self._index_placed.append(
                IndexPack(pack.pack_id, receipt.k, receipt.n, len(pack.data), receipt.placed, blobs)
            )

        async def write(page: list[tuple[bytes, Locator]]) -> None:
            blob = cbor2.dumps({cid: loc.to_wire() for cid, loc in page})
            blob_id = self.codec.chunk_id(blob)
            sealed = await self.run_sync(self.codec.seal, blob_id, blob)
            self.stats.index_blobs += 1
            for pack in packer.add(blob_id, sealed):
                await self._start_upload(uploads, pack, placed)

        batch: list[tuple[bytes, Locator]] = []
        for entry in self._unindexed(placed_before, on_way):
            batch.append(entry)
            if len(batch) == self.index_entries:
                await write(batch)
                batch = []
        if batch:
            await write(batch)
        tail = packer.flush()
        if tail is not None:
            await self._start_upload(uploads, tail, placed)

    def _unindexed(
        self, placed: list[bytes], on_way: dict[bytes, list[tuple[bytes, Locator]]]
    ) -> Iterator[tuple[bytes, Locator]]:
        """The chunks of unindexed packs, one pack at a time, then of those on their way."""
        for pack_id in placed:
            yield from self.catalog.pack_chunks(pack_id)
        for entries in on_way.values():
            yield from entries

    def _record_index(self) -> None:
        """Every data pack and index pack of this run is placed: record the index packs,
        and the data packs they list as indexed."""
        if not self._index_placed:
            return
        self.catalog.record_index(self._index_placed, self._indexing)
        for pack in self._index_placed:
            self._index_written.extend(pack.blobs)
        self._index_placed, self._indexing = [], []

    async def _report(self, force: bool = False) -> None:
        await self._reporter.report(self.stats, force)
