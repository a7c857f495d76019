"""A backup run's packs on their way to the mesh, and what the catalog learns as they land.

Packs upload in parallel, at most `parallel_uploads` at a time, and the walk
waits for a free slot before it hands over another pack, so memory stays at a
few packs whatever the file sizes. A pack's chunks enter the catalog only once
the pack is placed, and a file is remembered only once every chunk of it is, so
a killed backup, run again, sends only what is missing. The run then indexes
every chunk no placed index blob lists yet, its own and any a killed run left
behind. The index blobs go out while the last data packs are still being
placed, and count only once every one of those is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cbor2
import trio

from p2pbackup.backup.blobs import BlobCodec, Pack
from p2pbackup.backup.budget import Budget
from p2pbackup.backup.catalog import Catalog, ChunkList, FileState, IndexPack
from p2pbackup.backup.progress import BackupStats, Reporter
from p2pbackup.backup.snapshot import Locator
from p2pbackup.base.offload import RunSync
from p2pbackup.codec.packstore import PackReceipt, PackStore
from p2pbackup.errors import P2PBackupError

# One index blob lists at most this many chunks (about 3 MiB of CBOR): a huge first
# backup writes several blobs that pack and place like any other data, not one giant one.
INDEX_BLOB_ENTRIES = 50_000
# Unchanged-file rows are written to the catalog in batches of about this many.
REMEMBER_BATCH = 1000

OnPlaced = Callable[[Pack, PackReceipt], None]


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


def plain_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error a caller can act on, out of a nursery's exception group.

    A failed upload cancels the walk and the other uploads; callers (and the CLI)
    expect the `P2PBackupError` that says why, not a group around it."""
    real = [e for e in _leaves(group) if not isinstance(e, trio.Cancelled)]
    if real and all(isinstance(e, P2PBackupError) for e in real):
        return real[0]
    if len(real) == 1:
        return real[0]
    return group


class Uploads:
    """One run's uploads, index blobs and files waiting to be remembered.

    `slots` limits the uploads alive at once, and `_room` the bytes of their packs to
    about as many small packs' (three of a big file's: each pack is held several
    times over on its way out, as its shares and their frames); `stats` counts
    packs, bytes sent and index blobs, and `reporter` passes them on."""

    def __init__(
        self,
        codec: BlobCodec,
        catalog: Catalog,
        packs: PackStore,
        run_sync: RunSync,
        slots: trio.CapacityLimiter,
        stats: BackupStats,
        reporter: Reporter,
        index_entries: int = INDEX_BLOB_ENTRIES,
    ) -> None:
        self.codec = codec
        self.catalog = catalog
        self.packs = packs
        self.run_sync = run_sync
        self.stats = stats
        self.index_entries = index_entries
        self._slots = slots
        self._room = Budget(int(slots.total_tokens) * codec.pack_target, while_room=True)
        self._reporter = reporter
        self.pending: set[bytes] = set()  # chunk ids packed this run but not yet placed
        self.placed: set[bytes] = set()  # ids of the packs this run placed
        self.index_written: list[Locator] = []  # index blobs this run placed
        self._waiting: dict[bytes, list[_WaitingFile]] = {}  # pending chunk id -> its files
        self._ready: list[tuple[bytes, FileState, ChunkList]] = []  # files to remember
        # Data packs handed to the mesh and not placed yet: pack id -> its chunks.
        self._in_flight: dict[bytes, list[tuple[bytes, Locator]]] = {}
        # Uploads spawned, and those that have begun handing their pack to the store.
        self._spawned = 0
        self._begun = 0
        # Index packs placed this run, recorded once every data pack is, and the data
        # packs their blobs list.
        self._index_placed: list[IndexPack] = []
        self._indexing: list[bytes] = []

    # ---- files remembered once placed -----------------------------------

    def remember(self, path: bytes, state: FileState, chunks: ChunkList) -> None:
        """Tell the catalog about a file once every chunk of it is placed."""
        missing = {cid for cid, _ in chunks if cid in self.pending}
        if not missing:
            self._ready.append((path, state, chunks))
            self.remember_ready()
            return
        waiting = _WaitingFile(path, state, chunks, missing)
        for cid in missing:
            self._waiting.setdefault(cid, []).append(waiting)

    def remember_ready(self, *, force: bool = False) -> None:
        """Write the files ready to remember a batch at a time, not a transaction
        each; `force` writes what there is."""
        if self._ready and (force or len(self._ready) >= REMEMBER_BATCH):
            self.catalog.remember_files(self._ready)
            self._ready = []

    # ---- data packs -------------------------------------------------------

    async def upload_data(self, nursery: trio.Nursery, pack: Pack) -> None:
        """Place a pack of file data or trees; the index lists it while it is on its way."""
        self._in_flight[pack.pack_id] = [
            (cid, Locator(pack.pack_id, off, length)) for cid, off, length in pack.entries
        ]
        await self._start(nursery, pack, self._data_placed)

    async def _start(self, nursery: trio.Nursery, pack: Pack, on_placed: OnPlaced) -> None:
        # Acquire before spawning: the walk waits here, so at most `parallel_uploads`
        # finished packs are alive besides the one the packer is filling.
        token = object()
        await self._slots.acquire_on_behalf_of(token)
        try:
            await self._room.take(len(pack.data))
        except BaseException:
            self._slots.release_on_behalf_of(token)
            raise
        self._spawned += 1
        nursery.start_soon(self._upload, pack, token, on_placed)

    async def _upload(self, pack: Pack, token: object, on_placed: OnPlaced) -> None:
        self._begun += 1
        try:
            receipt = await self.packs.put(pack.pack_id, pack.data)
        finally:
            self._room.give(len(pack.data))
            self._slots.release_on_behalf_of(token)
        on_placed(pack, receipt)
        self.placed.add(pack.pack_id)
        self.stats.packs += 1
        self.stats.bytes_sent += receipt.bytes_sent
        await self._reporter.report(self.stats)

    def _data_placed(self, pack: Pack, receipt: PackReceipt) -> None:
        entries = self._in_flight.pop(pack.pack_id)
        self.catalog.record_pack(
            pack.pack_id, receipt.k, receipt.n, len(pack.data), receipt.placed, entries
        )
        for chunk_id, _ in entries:
            self.pending.discard(chunk_id)
            for waiting in self._waiting.pop(chunk_id, ()):
                waiting.missing.discard(chunk_id)
                if not waiting.missing:
                    self._ready.append((waiting.path, waiting.state, waiting.chunks))
        self.remember_ready(force=True)  # one transaction per placed pack

    # ---- index blobs ------------------------------------------------------

    async def store_index(self, nursery: trio.Nursery) -> None:
        """Write index blobs for every chunk placed or on its way that no placed index
        blob lists yet, while the last data packs are still being placed: the end of
        a backup waited for both, one after the other.

        At most `index_entries` chunks per blob; nothing at all when every chunk is
        indexed already (an unchanged tree sends nothing). A data pack counts as
        indexed only once the packs holding its index blobs are placed and
        `record_index` has run, after every data pack is placed: an index pack
        placed by a run whose data then failed is never recorded, and the next run
        indexes those packs' chunks."""
        # The last packs' uploads begin first: building the index is tens of
        # milliseconds of work with no await in it, and they would wait for it.
        while self._begun < self._spawned:
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
                await self._start(nursery, pack, placed)

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
            await self._start(nursery, tail, placed)

    def _unindexed(
        self, placed: list[bytes], on_way: dict[bytes, list[tuple[bytes, Locator]]]
    ) -> Iterator[tuple[bytes, Locator]]:
        """The chunks of unindexed packs, one pack at a time, then of those on their way."""
        for pack_id in placed:
            yield from self.catalog.pack_chunks(pack_id)
        for entries in on_way.values():
            yield from entries

    def record_index(self) -> None:
        """Every data pack and index pack of this run is placed: record the index packs,
        and the data packs they list as indexed."""
        if not self._index_placed:
            return
        self.catalog.record_index(self._index_placed, self._indexing)
        for pack in self._index_placed:
            self.index_written.extend(pack.blobs)
        self._index_placed, self._indexing = [], []
