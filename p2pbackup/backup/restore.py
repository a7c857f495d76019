"""Restoring a snapshot: trees first, then file data pack by pack.

Each pack is fetched once (any k of its shares) and every chunk in it is
verified against its id before it is written at its offset in its file, so
memory stays at a few packs whatever the file sizes and no byte of a
corrupted chunk reaches a file. A file whose chunk cannot be rebuilt is
reported with the reason and not left behind; everything else is restored,
then folders get their modes and mtimes, deepest first.

Most files lie whole inside one pack: such a file is created when its first
chunk has passed the check, and written, given its mode and mtime and closed
in one open. Creating a file is the dearest step of a restore, and
every extra open, truncate or path lookup per file showed in its time. A
file spread over several packs is created at its size while the folders are
made, written pack by pack, and finished at the end.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import os
import stat
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pbackup.backup.blob_reader import BlobReader, load_index
from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.progress import ProgressFn, Reporter, RunStats
from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.backup.tree import EntryKind, Tree, TreeEntry
from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.packstore import PackStore
from p2pbackup.errors import P2PBackupError

FINISH_BATCH = 512  # files given their mode and mtime per worker call
_GLOB_CHARS = "*?["

_Piece = tuple[int, bytes, Locator]  # (offset in the file, chunk id, where it lies)


@dataclass
class RestoreStats(RunStats):
    PROBLEMS = "failures"

    files_restored: int = 0
    files_failed: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


@dataclass(eq=False)
class _FilePlan:
    path: bytes
    entry: TreeEntry
    pieces: tuple[_Piece, ...]
    spread: bool = False  # over several packs: made at walk time, finished at the end
    failed: str | None = None
    unset: str | None = None  # restored, but why its mode or mtime could not be set


class _Prefetch:
    """The first few data packs, fetched while the walk is still making folders.

    The data phase starts with the packs the walk needed first, in that order, so
    these are the ones it waits for; without this it waited a whole fetch (k
    shares from the mesh) before it could write a byte. At most `limit` packs."""

    def __init__(self, packs: PackStore, nursery: trio.Nursery, limit: int) -> None:
        self._packs = packs
        self._nursery = nursery
        self._limit = limit
        self._started = 0
        self._fetches: dict[bytes, _Fetch] = {}

    def want(self, pack_id: bytes) -> None:
        if self._started < self._limit and pack_id not in self._fetches:
            self._started += 1
            fetch = self._fetches[pack_id] = _Fetch()
            self._nursery.start_soon(fetch.run, self._packs, pack_id)

    async def get(self, pack_id: bytes) -> bytes:
        fetch = self._fetches.pop(pack_id, None)
        if fetch is None:
            return await self._packs.get(pack_id)
        await fetch.done.wait()
        if fetch.error is not None:
            raise fetch.error
        assert fetch.data is not None
        return fetch.data


class _Fetch:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.data: bytes | None = None
        self.error: P2PBackupError | None = None

    async def run(self, packs: PackStore, pack_id: bytes) -> None:
        try:
            self.data = await packs.get(pack_id)
        except P2PBackupError as exc:
            self.error = exc
        finally:
            self.done.set()


@dataclass
class _Plan:
    include: tuple[str, ...]
    prefetch: _Prefetch
    files: list[_FilePlan] = field(default_factory=list)
    dirs: list[tuple[bytes, TreeEntry]] = field(default_factory=list)  # deepest first


class RestoreEngine:
    """Rebuilds snapshots into folders from one owner's packs."""

    def __init__(
        self,
        codec: BlobCodec,
        packs: PackStore,
        *,
        run_sync: RunSync = to_thread,
        progress: ProgressFn | None = None,
        parallel_packs: int = 4,
    ) -> None:
        if parallel_packs < 1:
            raise ValueError("parallel_packs must be at least 1")
        self.codec = codec
        self.packs = packs
        self.run_sync = run_sync
        self.parallel_packs = parallel_packs
        self.stats = RestoreStats()
        self._index_problems: list[str] = []
        self._reporter = Reporter(progress)

    async def run(
        self,
        snapshot: Snapshot,
        target: str | os.PathLike[str],
        include: Sequence[str] = (),
        *,
        index_blobs: tuple[Locator, ...] | None = None,
        released: frozenset[bytes] = frozenset(),
    ) -> RestoreStats:
        """Restore `snapshot` under `target` (each backed-up path under its final name).

        `include` limits the restore to paths (relative to `target`, e.g.
        "Documents/*.txt") matching one of the fnmatch patterns, or lying inside a
        folder that does. Files that cannot be rebuilt are listed in
        `stats.failures` (by their path under `target`) with a reason and not left
        behind. Raises `P2PBackupError` when nothing can be restored (the root tree
        cannot be read), and when the target runs out of space or quota: then the
        restore stops at once rather than fail every file left, keeps the files it
        finished, and removes any it had begun.

        `index_blobs` (default: the snapshot's own) and `released` say where chunks
        are once a prune has repacked some (`IndexState.index_blobs`)."""
        self.stats = RestoreStats()
        self._index_problems = []
        self._halt = _Halt()
        reader = BlobReader(self.codec, self.packs, {})
        blobs = snapshot.index if index_blobs is None else index_blobs
        reader.index = await load_index(reader, blobs, self._index_problems, released)
        try:
            root_tree = Tree.decode(await reader.blob(snapshot.tree))
        except P2PBackupError as exc:
            raise P2PBackupError(
                f"snapshot {snapshot.short_id}: its root folder list cannot be read ({exc})"
                + self._index_note()
            ) from None
        root = os.fsencode(target)
        await self.run_sync(os.makedirs, root, 0o700, True)
        async with trio.open_nursery() as fetches:
            plan = _Plan(tuple(include), _Prefetch(self.packs, fetches, self.parallel_packs))
            await self._walk(reader, root_tree, root, b"", not include, [], plan)
            reader.clear()
            if self._halt.reason is None:
                await self._write_data(plan.files, plan.prefetch)
            fetches.cancel_scope.cancel()
        if self._halt.reason is not None:
            await self._stop_full(target, plan)
        spread = [f for f in plan.files if f.spread]
        for start in range(0, len(spread), FINISH_BATCH):
            batch = spread[start : start + FINISH_BATCH]
            # Set modes and mtimes, or remove what could not be rebuilt: never leave
            # a file with zero-filled holes where its data should be.
            items = [(f.path, f.entry, f.failed is None) for f in batch]
            reasons = await self.run_sync(_finish_files, items)
            for file, reason in zip(batch, reasons, strict=True):
                if file.failed is None:
                    file.unset = reason
                    self.stats.files_restored += 1
            await self._report()
        for file in plan.files:
            if file.failed is not None:
                self.stats.files_failed += 1
                self._fail(file.path, file.failed)
            elif file.unset is not None:
                self._fail(file.path, f"restored, but mode or mtime not set: {file.unset}")
        # Deepest first: a parent's mode may forbid entering it.
        reasons = await self.run_sync(_finish_files, [(p, e, True) for p, e in plan.dirs])
        for (path, _), reason in zip(plan.dirs, reasons, strict=True):
            if reason is not None:
                self._fail(path, f"mode or mtime not set: {reason}")
        await self._report(force=True)
        return self.stats

    async def _stop_full(self, target: str | os.PathLike[str], plan: _Plan) -> None:
        """The target is full: remove the files spread over several packs (each still
        has holes until the end) and say how far the restore got."""
        spread = [(f.path, f.entry, False) for f in plan.files if f.spread]
        await self.run_sync(_finish_files, spread)
        raise P2PBackupError(
            f"restore stopped: {self._halt.reason} in {os.fsdecode(target)}; "
            f"{self.stats.files_restored} files were restored before it filled: "
            "free some space and restore again"
        )

    def _fail(self, path: bytes, reason: str) -> None:
        self.stats.failures.append((os.fsdecode(path), reason))

    def _index_note(self) -> str:
        if not self._index_problems:
            return ""
        return "; unreadable index: " + "; ".join(self._index_problems[:3])

    async def _walk(
        self,
        reader: BlobReader,
        tree: Tree,
        out_dir: bytes,
        relative: bytes,
        whole: bool,
        uncreated: list[bytes],
        plan: _Plan,
    ) -> None:
        """Plan one folder's entries, creating its folders, files and symlinks in one
        worker call (a call per entry cost more than creating it), then walk its folders.

        `whole`: everything here is included. Otherwise folders on the way to an
        included path are in `uncreated` until something inside them is restored,
        so a subset restore does not leave a skeleton of empty folders. A folder
        whose list cannot be read is reported and not created."""
        if self._halt.reason is not None:
            return
        makes: list[_Make] = []
        visits: list[tuple[TreeEntry, bytes, bytes, bool, Tree]] = []
        waiting = 0  # files made when their data comes, which need this folder too
        for entry in tree.entries:
            path = os.path.join(out_dir, entry.name)
            rel = os.path.join(relative, entry.name)
            included = whole or _included(rel, plan.include)
            if entry.kind is EntryKind.DIR:
                if not included and not _may_contain(rel, plan.include):
                    continue
                assert entry.subtree is not None
                try:
                    subtree = Tree.decode(await reader.blob(entry.subtree))
                except P2PBackupError as exc:
                    self._fail(path, f"folder list unreadable: {exc}{self._index_note()}")
                    continue
                visits.append((entry, path, rel, included, subtree))
                if included:
                    makes.append(_Make(path, entry))
            elif not included:
                continue
            elif entry.kind is EntryKind.SYMLINK:
                makes.append(_Make(path, entry))
            else:
                file = self._file_plan(reader.index, path, entry)
                for _, _, locator in file.pieces:
                    plan.prefetch.want(locator.pack_id)
                if file.failed is not None:
                    plan.files.append(file)  # listed as failed, never created
                elif file.spread:
                    makes.append(_Make(path, entry, file))
                else:
                    plan.files.append(file)
                    waiting += 1
        unmade: set[bytes] = set()
        if makes or waiting:
            makes = [_Make(folder, None) for folder in uncreated] + makes
            uncreated.clear()
            try:
                reasons = await self.run_sync(_make_entries, makes, self._halt)
            except _TargetFull as full:
                makes, reasons = makes[: len(full.done)], full.done
            for make, reason in zip(makes, reasons, strict=True):
                kind = make.entry.kind if make.entry is not None else EntryKind.DIR
                if reason is not None:
                    self._fail(make.path, reason)
                    unmade.add(make.path)
                    if kind is EntryKind.FILE:
                        self.stats.files_failed += 1
                elif kind is EntryKind.SYMLINK:
                    self.stats.symlinks += 1
                elif make.file is not None:
                    plan.files.append(make.file)
        for entry, path, rel, included, subtree in visits:
            if path in unmade:
                continue
            if included:
                await self._walk(reader, subtree, path, rel, True, [], plan)
            else:
                uncreated.append(path)
                await self._walk(reader, subtree, path, rel, False, uncreated, plan)
                if uncreated and uncreated[-1] == path:
                    uncreated.pop()  # nothing inside was restored
                    continue
            plan.dirs.append((path, entry))
            self.stats.dirs += 1

    def _file_plan(self, index: dict[bytes, Locator], path: bytes, entry: TreeEntry) -> _FilePlan:
        """Where each of a file's chunks lies, and whether they all lie in one pack."""
        pieces: list[_Piece] = []
        offset = 0
        for chunk_id, size in entry.chunks:
            locator = index.get(chunk_id)
            if locator is None:
                reason = f"chunk {chunk_id.hex()[:12]} is in no index of this owner"
                return _FilePlan(path, entry, (), failed=reason + self._index_note())
            pieces.append((offset, chunk_id, locator))
            offset += size
        spread = len({locator.pack_id for _, _, locator in pieces}) > 1
        return _FilePlan(path, entry, tuple(pieces), spread=spread)

    async def _write_data(self, files: list[_FilePlan], prefetch: _Prefetch) -> None:
        """Sort every chunk write by pack, then fetch each pack once."""
        by_pack: dict[bytes, dict[_FilePlan, list[_Piece]]] = defaultdict(dict)
        empty: dict[_FilePlan, list[_Piece]] = {}
        for file in files:
            if file.failed is not None:
                continue
            if not file.pieces:
                empty[file] = []
            for piece in file.pieces:
                by_pack[piece[2].pack_id].setdefault(file, []).append(piece)
        if empty:  # in no pack: created and finished with nothing to write
            await self._write_files(b"", b"", empty)
        limiter = trio.CapacityLimiter(self.parallel_packs)
        async with trio.open_nursery() as nursery:
            for pack_id, writes in by_pack.items():
                nursery.start_soon(self._restore_pack, limiter, prefetch, pack_id, writes)

    async def _restore_pack(
        self,
        limiter: trio.CapacityLimiter,
        prefetch: _Prefetch,
        pack_id: bytes,
        writes: dict[_FilePlan, list[_Piece]],
    ) -> None:
        async with limiter:
            if self._halt.reason is not None or all(file.failed is not None for file in writes):
                return
            try:
                pack = await prefetch.get(pack_id)
            except P2PBackupError as exc:
                for file in writes:
                    file.failed = file.failed or f"pack {pack_id.hex()[:12]}: {exc}"
                return
            await self._write_files(pack_id, pack, writes)

    async def _write_files(
        self, pack_id: bytes, pack: bytes, writes: dict[_FilePlan, list[_Piece]]
    ) -> None:
        """Write what files have in one pack, in one worker call: a hand-off per chunk
        or per file cost more than the writes."""
        if self._halt.reason is not None:  # filled while this pack was on its way
            return
        todo = [file for file in writes if file.failed is None]
        items = [
            _Write(file.path, None if file.spread else file.entry, writes[file]) for file in todo
        ]
        try:
            outcomes = await self.run_sync(
                _write_pack, self.codec, pack_id, pack, items, self._halt
            )
        except _TargetFull as full:
            outcomes = full.done
        for file, (written, error, unset) in zip(todo, outcomes, strict=False):
            self.stats.bytes += written
            if error is not None:
                file.failed = file.failed or error
            elif not file.spread:
                file.unset = unset
                self.stats.files_restored += 1
        await self._report()

    async def _report(self, force: bool = False) -> None:
        await self._reporter.report(self.stats, force)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class _TargetFull(Exception):
    """The target is out of space or quota, so every write after this one would fail
    too. `done` holds the outcomes of the items before the one that failed."""

    def __init__(self, reason: str, done: list[Any]) -> None:
        super().__init__(reason)
        self.done = done


@dataclass
class _Halt:
    """Shared with the workers: once one finds the target full, the others stop
    before their next file instead of each finding out with a failed write."""

    reason: str | None = None

    def check(self, done: list[Any]) -> None:
        if self.reason is not None:
            raise _TargetFull(self.reason, done)

    def full(self, exc: OSError, done: list[Any]) -> _TargetFull:
        self.reason = self.reason or _why(exc).lower()
        return _TargetFull(self.reason, done)


def _included(relative: bytes, patterns: tuple[str, ...]) -> bool:
    """True when `relative` matches a pattern or lies inside a folder that does."""
    if not patterns:
        return True
    text = os.fsdecode(relative)
    return any(
        fnmatch.fnmatchcase(text, p) or text.startswith(p.rstrip("/") + "/") for p in patterns
    )


def _may_contain(relative: bytes, patterns: tuple[str, ...]) -> bool:
    """Whether some pattern could match a path inside the folder `relative`: a match
    must begin with the pattern's literal prefix, the part before any glob character."""
    inside = os.fsdecode(relative) + "/"
    for pattern in patterns:
        cut = min((i for i, c in enumerate(pattern) if c in _GLOB_CHARS), default=len(pattern))
        literal = pattern[:cut]
        if literal.startswith(inside) or inside.startswith(literal):
            return True
    return False


@dataclass(frozen=True)
class _Make:
    """A path to create: `entry` says what; None is a folder on the way to an included
    path. `file` is the plan of a file spread over several packs."""

    path: bytes
    entry: TreeEntry | None
    file: _FilePlan | None = None


def _make_entries(makes: list[_Make], halt: _Halt) -> list[str | None]:
    """Worker side of `_walk`: create each path in order; why each failed, or None."""
    reasons: list[str | None] = []
    for make in makes:
        halt.check(reasons)
        entry = make.entry
        try:
            if entry is None or entry.kind is EntryKind.DIR:
                _make_dir(make.path)
            elif entry.kind is EntryKind.SYMLINK:
                _make_symlink(make.path, entry)
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


def _finish_files(items: list[tuple[bytes, TreeEntry, bool]]) -> list[str | None]:
    """Worker side of the last step: set each restored path's mode and mtime (True) or
    remove a file that could not be rebuilt (False); why setting failed, or None."""
    reasons: list[str | None] = []
    for path, entry, restored in items:
        try:
            if restored:
                _set_meta(path, entry)
            else:
                _remove_partial(path)
        except OSError as exc:
            reasons.append(_why(exc))
            continue
        reasons.append(None)
    return reasons


def _make_dir(path: bytes) -> None:
    # A symlink where a folder goes would send the folder's contents elsewhere.
    if os.path.islink(path):
        os.unlink(path)
    os.makedirs(path, 0o700, exist_ok=True)


def _create(path: bytes) -> int:
    """Open `path` as a new empty file for writing, replacing a symlink in the way."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    os.unlink(path)  # a symlink: writing through it would land elsewhere
    return os.open(path, flags, 0o600)


def _make_symlink(path: bytes, entry: TreeEntry) -> None:
    assert entry.target is not None
    if os.path.lexists(path) and not stat.S_ISDIR(os.lstat(path).st_mode):
        os.unlink(path)
    os.symlink(entry.target, path)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)


def _set_meta(path: bytes, entry: TreeEntry) -> None:
    os.chmod(path, entry.mode)
    os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))


@dataclass(frozen=True)
class _Write:
    """What one file has in one pack. `entry` is given when the file lies whole in
    it: then the file is created, written and finished here."""

    path: bytes
    entry: TreeEntry | None
    pieces: list[_Piece]


def _write_pack(
    codec: BlobCodec, pack_id: bytes, pack: bytes, writes: list[_Write], halt: _Halt
) -> list[tuple[int, str | None, str | None]]:
    """Worker side of `_write_files`; stops with `_TargetFull` once the target is."""
    outcomes: list[tuple[int, str | None, str | None]] = []
    for write in writes:
        halt.check(outcomes)
        try:
            outcomes.append(_write_file(codec, pack_id, pack, write))
        except OSError as exc:  # only space or quota: the file is gone already
            raise halt.full(exc, outcomes) from None
    return outcomes


def _write_file(
    codec: BlobCodec, pack_id: bytes, pack: bytes, write: _Write
) -> tuple[int, str | None, str | None]:
    """(bytes written, why the file failed or None, why its mode or mtime was not set
    or None). A file that fails is removed if it was created here; a spread one is
    removed at the end of the restore. Out of space or quota, the `OSError` is raised
    once the file is removed."""
    fd: int | None = None
    written = 0
    try:
        try:
            for offset, chunk_id, locator in write.pieces:
                sealed = pack[locator.offset : locator.offset + locator.length]
                try:
                    # Opened with its id: the content must hash to it, or nothing of
                    # it is written.
                    plain = codec.open(chunk_id, sealed)
                except P2PBackupError as exc:
                    where = f"chunk {chunk_id.hex()[:12]} in pack {pack_id.hex()[:12]}"
                    raise _ChunkFailed(f"{where}: {exc}") from None
                if fd is None:  # once the first chunk has passed
                    if write.entry is not None:
                        fd = _create(write.path)
                    else:
                        fd = os.open(write.path, os.O_WRONLY | os.O_NOFOLLOW)
                _write_at(fd, offset, plain)
                written += len(plain)
            if write.entry is None:
                return written, None, None
            if fd is None:  # an empty file
                fd = _create(write.path)
            return written, None, _finish_open(fd, write.entry)
        finally:
            if fd is not None:
                os.close(fd)
    except (_ChunkFailed, OSError) as exc:
        if write.entry is not None and fd is not None:
            _remove_partial(write.path)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise
        return 0, _why(exc) if isinstance(exc, OSError) else str(exc), None


class _ChunkFailed(Exception):
    """A chunk failed its check: its file cannot be rebuilt from this pack."""


def _finish_open(fd: int, entry: TreeEntry) -> str | None:
    """Give an open file its mode and mtime; why that failed, or None."""
    try:
        os.fchmod(fd, entry.mode)
        os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
    except OSError as exc:
        return _why(exc)
    return None


def _write_at(fd: int, offset: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # pwrite may write less than asked
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _remove_partial(path: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
