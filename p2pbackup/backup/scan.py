"""Walking ahead of a backup: list folders, skip unchanged files, read small ones early.

The backup engine builds trees bottom-up and packs chunks in one task; if it
also waited for every folder listing and every file read, one core would idle
while the other worked. The scanner runs the same depth-first walk a little
ahead of the engine, in its own task: it lists each folder, looks each file up
in the catalog, and reads, chunks and seals the small changed files of each
window of a folder in one worker call, several windows at once. The engine
takes listings in walk order, so the two never disagree about where they are.

Memory stays bounded: at most `windows_ahead` windows of read-ahead (each at
most `READ_AHEAD_BYTES`) and `LISTINGS_AHEAD` folder listings wait for the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import trio

from p2pbackup.backup.blobs import BlobCodec, ChunkReader
from p2pbackup.backup.catalog import Catalog, ChunkList, FileState
from p2pbackup.backup.tree import EntryKind
from p2pbackup.backup.walk import FsEntry, list_directory
from p2pbackup.base.offload import RunSync

# Files up to one chunk are read ahead in batches; bigger ones stream through the engine.
SMALL_FILE = 1024 * 1024
READ_AHEAD_BYTES = 8 * 1024 * 1024
READ_AHEAD_FILES = 256
LISTINGS_AHEAD = 64

# Where a chunk is first sealed, as the place of its file in walk order: the
# index of each entry on the file's path, from the root's index down. Tuples
# compare in depth-first order, which is the order the engine takes files in,
# so a file whose chunk an earlier file claimed finds it packed already and
# need not seal it. PACKED comes first: the engine claims what it packs itself.
Claim = tuple[int, ...]
Claims = dict[bytes, Claim]
PACKED: Claim = ()
# Claims only save sealing work, so past this many (about 25 MB) they are dropped
# and start again: memory stays bounded on a tree of millions of files.
MAX_CLAIMS = 100_000


@dataclass(frozen=True)
class Prepared:
    """A small file read, chunked and sealed in a worker thread.

    A chunk another file of this run claimed first is not sealed again: its
    sealed bytes are None."""

    chunks: tuple[tuple[bytes, int, bytes | None], ...]  # (chunk id, plain length, sealed)
    opened: FileState | None  # its state before it was read; None if unknown


@dataclass(eq=False)
class Window:
    """A run of a folder's entries whose small changed files are read in one worker call."""

    entries: Sequence[FsEntry]
    known: dict[bytes, ChunkList]  # unchanged files, by path: their chunks, not read again
    batch: list[bytes]  # small changed files to read ahead
    places: list[Claim]  # each batch file's place in walk order
    first: int  # the index of its first entry in the folder
    done: trio.Event = field(default_factory=trio.Event)
    prepared: dict[bytes, Prepared | OSError] = field(default_factory=dict)


@dataclass(eq=False)
class Listing:
    """One folder as the scanner found it: its windows in order, or why it could not be listed."""

    windows: list[Window]
    error: OSError | None = None


def file_state(entry: FsEntry) -> FileState:
    return FileState(entry.size, entry.mtime_ns, entry.inode, entry.ctime_ns)


def windows(children: Sequence[FsEntry]) -> Iterator[Sequence[FsEntry]]:
    """Consecutive runs of a folder's entries holding at most one read-ahead batch."""
    start, size, count = 0, 0, 0
    for i, child in enumerate(children):
        if child.kind is EntryKind.FILE and child.size <= SMALL_FILE:
            size += child.size
            count += 1
        if size >= READ_AHEAD_BYTES or count >= READ_AHEAD_FILES:
            yield children[start : i + 1]
            start, size, count = i + 1, 0, 0
    if start < len(children):
        yield children[start:]


def prepare_files(
    codec: BlobCodec, paths: list[bytes], claims: Claims, places: list[Claim]
) -> dict[bytes, Prepared | OSError]:
    """Worker-thread side of the read-ahead; an unreadable file maps to its error.

    A handoff to a worker thread costs about as much as sealing a small file,
    so one call per file per step made a tree of headers five times slower
    than its codec work.

    A chunk that a file earlier in walk order claimed (see `Claims`) is not
    sealed again: sealing duplicates cost a quarter of a first backup's
    compression on a tree of headers. `claims` is shared between worker
    threads; each dict step is atomic, and a race only seals a chunk twice."""
    out: dict[bytes, Prepared | OSError] = {}
    for path, here in zip(paths, places, strict=True):
        try:
            reader = codec.open_chunker(path)
            try:
                chunks = []
                while (plain := reader.next_chunk()) is not None:
                    chunk_id = codec.chunk_id(plain)
                    sealed = None
                    if claims.setdefault(chunk_id, here) >= here:
                        claims[chunk_id] = here
                        sealed = codec.seal(chunk_id, plain)
                    chunks.append((chunk_id, len(plain), sealed))
            finally:
                reader.close()
        except OSError as exc:
            out[path] = exc
            continue
        out[path] = Prepared(tuple(chunks), opened_state(reader))
    return out


def opened_state(reader: ChunkReader) -> FileState | None:
    """The state a file had before it was read, from the descriptor it was read through.

    Recorded with the chunks read, it makes any write during or after the read
    show as a change to the next run; a second stat after the read, once per
    file, would cost more than the check is worth."""
    st = reader.opened
    if st is None:
        return None  # saved as read, and not remembered: read again next time
    return FileState(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class Scanner:
    """Produces `Listing`s of every folder under the roots, in depth-first order."""

    def __init__(
        self,
        codec: BlobCodec,
        catalog: Catalog,
        run_sync: RunSync,
        excludes: tuple[str, ...] = (),
        windows_ahead: int = 3,
        claims: Claims | None = None,
        look_up: bool = True,
    ) -> None:
        if windows_ahead < 1:
            raise ValueError("windows_ahead must be at least 1")
        self.codec = codec
        self.catalog = catalog
        self.run_sync = run_sync
        self.excludes = excludes
        self.claims: Claims = {} if claims is None else claims
        # False when the catalog remembered no file as the run began: a first backup
        # would look every folder up and find nothing. Files this run remembers are
        # not walked again.
        self.look_up = look_up
        # Set once the claims were dropped for memory: a PACKED claim then no longer
        # proves a chunk was packed this run (see `BackupEngine._held`).
        self.claims_dropped = False
        # Taken when a window's read starts, given back when the engine takes its result.
        self._budget = trio.Semaphore(windows_ahead)

    async def scan(
        self,
        roots: Sequence[FsEntry],
        send: trio.MemorySendChannel[Listing],
        jobs: trio.Nursery,
    ) -> None:
        """Walk every folder root; the reads run in `jobs`. Closes `send` when done."""
        async with send:
            for i, root in enumerate(roots):
                if root.kind is EntryKind.DIR:
                    await self._scan_dir(root.path, send, jobs, (i,))

    async def take(self, window: Window) -> dict[bytes, Prepared | OSError]:
        """Wait for a window's read-ahead and hand it over (the engine's side)."""
        await window.done.wait()
        prepared, window.prepared = window.prepared, {}
        if window.batch:
            self._budget.release()
        return prepared

    async def _scan_dir(
        self,
        path: bytes,
        send: trio.MemorySendChannel[Listing],
        jobs: trio.Nursery,
        place: Claim,
    ) -> None:
        try:
            children = await self.run_sync(list_directory, path, self.excludes)
        except OSError as exc:
            await send.send(Listing([], exc))
            return
        listing = Listing([])
        first = 0
        for entries in windows(children):
            listing.windows.append(self._window(entries, place, first))
            first += len(entries)
        await send.send(listing)
        for window in listing.windows:
            if window.batch:
                # The engine takes windows in this same order, so the budget an earlier
                # window holds is always given back: no wait here can block the engine.
                await self._budget.acquire()
                jobs.start_soon(self._read, window)
            else:
                window.done.set()
            for i, child in enumerate(window.entries, window.first):
                if child.kind is EntryKind.DIR:
                    await self._scan_dir(child.path, send, jobs, (*place, i))

    def _window(self, entries: Sequence[FsEntry], place: Claim, first: int) -> Window:
        files = [(i, c) for i, c in enumerate(entries, first) if c.kind is EntryKind.FILE]
        known = (
            self.catalog.unchanged_files({f.path: file_state(f) for _, f in files})
            if self.look_up
            else {}
        )
        read = [(i, f) for i, f in files if f.path not in known and f.size <= SMALL_FILE]
        batch = [f.path for _, f in read]
        return Window(entries, known, batch, [(*place, i) for i, _ in read], first)

    async def _read(self, window: Window) -> None:
        if len(self.claims) > MAX_CLAIMS:
            self.claims_dropped = True
            self.claims.clear()
        window.prepared = await self.run_sync(
            prepare_files, self.codec, window.batch, self.claims, window.places
        )
        window.done.set()
