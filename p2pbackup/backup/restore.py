"""Restoring a snapshot: trees first, then file data pack by pack.

Each pack is fetched once (any k of its shares) and checked against its id, and
every chunk in it must open under the owner's key before it is written at its
offset in its file (decision 0053).
Packs are fetched several at a time within a memory budget and written in
the order the files need them (decision 0044), so memory stays at a few packs
whatever the file sizes, and no byte of a corrupted chunk reaches a file. A
file whose chunk cannot be rebuilt is reported with the reason and not left
behind; everything else is restored, then folders get their modes and mtimes,
deepest first.

Most files lie whole inside one pack: such a file is created once its chunks
have passed the check, and written, given its mode and mtime and closed
in one open. Creating a file is the dearest step of a restore, and
every extra open, truncate or path lookup per file showed in its time. A
file spread over several packs is created at its size while the folders are
made, written pack by pack, and finished at the end.

This module runs the steps in order and writes the data; the folder walk
(`restore_plan`), the early pack fetches (`restore_fetch`) and the worker-side
file work (`restore_files`) have modules of their own.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

import trio

from p2pbackup.backup.blob_reader import BlobReader, load_index
from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.budget import Budget
from p2pbackup.backup.progress import ProgressFn, Reporter, RestoreStats
from p2pbackup.backup.restore_fetch import PackTask, Prefetch, pack_extent
from p2pbackup.backup.restore_files import (
    FilePlan,
    Halt,
    Piece,
    TargetFull,
    Write,
    finish_files,
    make_links,
    open_target,
    remove_empty,
    write_pack,
    xattrs_of_made,
)
from p2pbackup.backup.restore_open import Opened, open_pieces, pack_is_sound
from p2pbackup.backup.restore_plan import Plan, TreeWalk, paths_hint
from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.backup.tree import EntryKind, Tree, TreeEntry
from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.packstore import PackStore, named_pack
from p2pbackup.errors import P2PBackupError

__all__ = ["FINISH_BATCH", "RestoreEngine", "RestoreStats"]

FINISH_BATCH = 512  # files given their mode and mtime per worker call
# Bytes of packs a restore has on their way or waiting to be written: eight packs of
# the usual size, enough for every holder of a ten-peer mesh to have a request to
# answer. The peer holds about as much again while it gathers their shares.
MEMORY_BUDGET = 32 * 1024 * 1024


class RestoreEngine:
    """Rebuilds snapshots into folders from one owner's packs."""

    def __init__(
        self,
        codec: BlobCodec,
        packs: PackStore,
        *,
        run_sync: RunSync = to_thread,
        progress: ProgressFn | None = None,
        parallel_packs: int = 16,
        memory_budget: int = MEMORY_BUDGET,
        devices: bool | None = None,
        pack_sync: RunSync | None = None,
    ) -> None:
        """`devices`: whether device nodes may be made (default: when running as root).
        `memory_budget`: bytes of packs in flight at once, `parallel_packs` at most.
        `pack_sync` runs the work on each fetched pack (its hash, opening and writing
        its chunks; default `run_sync`): a process that runs the folder walk inline
        gives it a worker thread, so that one pack is checked while the one before it
        is written and the pipe that brings the next is read meanwhile."""
        if parallel_packs < 1:
            raise ValueError("parallel_packs must be at least 1")
        self.codec = codec
        self.packs = packs
        self.run_sync = run_sync
        self.pack_sync = run_sync if pack_sync is None else pack_sync
        self.parallel_packs = parallel_packs
        self.memory_budget = memory_budget
        # Packs fetched during the walk, before the budget counts them (big files' may
        # be the bigger ones).
        largest = max(codec.pack_target, codec.big_pack_target)
        self.prefetch_packs = max(1, min(parallel_packs, memory_budget // largest))
        self.devices = os.geteuid() == 0 if devices is None else devices
        self.stats = RestoreStats()
        self._index_problems: list[str] = []
        self._halt = Halt()
        self._plan: Plan | None = None  # the restore's, once its walk begins
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
        behind, and so is a folder that cannot be made, with the count of entries lost
        with it. Raises `P2PBackupError` when nothing can be restored (the root tree
        cannot be read, the target cannot be made or written in, no include pattern
        matches anything), and when the target runs out of space or quota: then the
        restore stops at once rather than fail every file left, keeps the files it
        finished, and removes any it had begun.

        `index_blobs` (default: the snapshot's own) and `released` say where chunks
        are once a prune has repacked some (`IndexState.index_blobs`)."""
        self.stats = RestoreStats()
        self._index_problems = []
        self._halt = Halt()
        blobs = snapshot.index if index_blobs is None else index_blobs
        reader, root_tree = await self._open_root(snapshot, blobs, released)
        root = os.fsencode(target)
        made = await self.run_sync(open_target, root)
        self._plan = None
        try:
            plan = await self._restore(reader, root_tree, root, tuple(include))
            if include:
                await self._check_includes(snapshot, root_tree, plan, root if made else None)
            if self._halt.reason is not None:
                await self._stop_full(target, plan)
            await self._finish_spread(plan)
        except BaseException:  # stopped, or failed: trio may wrap the Cancelled
            await self._abandon()
            raise
        for file in plan.files:
            if file.failed is not None:
                self.stats.files_failed += 1
                self.stats.fail(file.path, file.failed)
            elif file.unset is not None:
                self.stats.fail(file.path, f"restored, but {file.unset}")
        await self._finish_links(plan)
        await self._finish_xattrs(plan)
        # Deepest first: a parent's mode may forbid entering it.
        reasons = await self.run_sync(finish_files, [(p, e, True) for p, e in plan.dirs])
        for (path, _), reason in zip(plan.dirs, reasons, strict=True):
            if reason is not None:
                self.stats.fail(path, reason)
        await self._report(force=True)
        return self.stats

    async def _finish_links(self, plan: Plan) -> None:
        """Link the later paths of each hard-link group to its first, now written; a
        group whose first path was not restored leaves its links unrestored too."""
        if not plan.links:
            return
        failed = plan.unmade | {f.path for f in plan.files if f.failed is not None}
        todo = []
        for path, holder, entry in plan.links:
            if holder in failed:
                self._link_failed(path, entry, f"hard link to {os.fsdecode(holder)}, not restored")
            else:
                todo.append((path, holder, entry))
        reasons = await self.run_sync(make_links, [(path, holder) for path, holder, _ in todo])
        for (path, _, entry), reason in zip(todo, reasons, strict=True):
            if reason is not None:
                self._link_failed(path, entry, reason)
            elif entry.kind is EntryKind.FILE:
                self.stats.files_restored += 1
            elif entry.kind is EntryKind.SYMLINK:
                self.stats.symlinks += 1

    def _link_failed(self, path: bytes, entry: TreeEntry, reason: str) -> None:
        self.stats.fail(path, reason)
        if entry.kind is EntryKind.FILE:
            self.stats.files_failed += 1

    async def _finish_xattrs(self, plan: Plan) -> None:
        """Extended attributes of the symlinks and special files the walk made."""
        if not plan.xattrs:
            return
        reasons = await self.run_sync(xattrs_of_made, plan.xattrs)
        for (path, _), reason in zip(plan.xattrs, reasons, strict=True):
            if reason is not None:
                self.stats.fail(path, f"restored, but {reason}")

    async def _open_root(
        self, snapshot: Snapshot, blobs: tuple[Locator, ...], released: frozenset[bytes]
    ) -> tuple[BlobReader, Tree]:
        """Read the index, then the root folder list: without it nothing can be restored."""
        reader = BlobReader(self.codec, self.packs, {})
        reader.index = await load_index(reader, blobs, self._index_problems, released)
        try:
            return reader, Tree.decode(await reader.blob(snapshot.tree))
        except P2PBackupError as exc:
            raise P2PBackupError(
                f"snapshot {snapshot.short_id}: its root folder list cannot be read ({exc})"
                + self._index_note()
            ) from None

    async def _restore(
        self, reader: BlobReader, root_tree: Tree, root: bytes, include: tuple[str, ...]
    ) -> Plan:
        """Walk the trees, making folders, then write the data pack by pack; the first
        packs are fetched while the walk goes on."""
        async with trio.open_nursery() as fetches:
            prefetch = Prefetch(self.packs, fetches, self.prefetch_packs)
            plan = self._plan = Plan(include, prefetch, devices=self.devices)
            walk = TreeWalk(reader, self.run_sync, self._halt, self.stats, plan, self._index_note())
            await walk.walk(root_tree, root, b"", not include, [])
            reader.clear()
            if self._halt.reason is None:
                await self._write_data(plan.files, plan.prefetch)
            fetches.cancel_scope.cancel()
        return plan

    async def _finish_spread(self, plan: Plan, report: bool = True) -> None:
        """Set the modes and mtimes of the files spread over several packs that were
        written whole, and remove the others (not rebuilt, or cut short by a stop): never
        leave a file with zero-filled holes where its data should be. A stop keeps the
        whole ones: removing them all kept none of the big files a full target had room
        for."""
        spread = [f for f in plan.files if f.spread and not f.finished]
        for start in range(0, len(spread), FINISH_BATCH):
            batch = spread[start : start + FINISH_BATCH]
            reasons = await self.run_sync(finish_files, [(f.path, f.entry, f.whole) for f in batch])
            for file, reason in zip(batch, reasons, strict=True):
                file.finished = True
                if file.whole:
                    file.unset = reason
                    self.stats.files_restored += 1
            if report:
                await self._report()

    async def _abandon(self) -> None:
        """The restore was stopped (Ctrl-C, the peer stopping) or failed: finish each file
        spread over several packs that was written whole, and remove the others, which
        have zero-filled holes at their full size, so that no file left behind passes
        for restored."""
        if self._plan is not None:
            with trio.CancelScope(shield=True):
                await self._finish_spread(self._plan, report=False)

    async def _stop_full(self, target: str | os.PathLike[str], plan: Plan) -> None:
        """The target is full: finish the spread files written whole, remove the others
        (each still has holes), and say how far the restore got."""
        await self._finish_spread(plan, report=False)
        raise P2PBackupError(
            f"restore stopped: {self._halt.reason} in {os.fsdecode(target)}; "
            f"{self.stats.files_restored} files were restored before it filled: "
            "free some space and restore again into an empty folder"
        )

    async def _check_includes(
        self, snapshot: Snapshot, root_tree: Tree, plan: Plan, made: bytes | None
    ) -> None:
        """An include pattern that matched nothing: an error when none matched (the
        folder this restore made is removed), else listed as not restored. Either way
        the user learns what the snapshot's paths look like: they begin with each
        backed-up path's final name, which is easy to leave out."""
        missed = [p for p in plan.include if p not in plan.matched]
        if not missed:
            return
        where = paths_hint(root_tree)
        if len(missed) == len(plan.include):
            if made is not None:
                await self.run_sync(remove_empty, made)
            quoted = " or ".join(repr(p) for p in missed)
            raise P2PBackupError(
                f"no path in snapshot {snapshot.short_id} matches {quoted}; {where}"
            )
        for pattern in missed:
            self.stats.failures.append((f"--include {pattern!r}", f"matches nothing; {where}"))

    def _index_note(self) -> str:
        if not self._index_problems:
            return ""
        return "; unreadable index: " + "; ".join(self._index_problems[:3])

    async def _write_data(self, files: list[FilePlan], prefetch: Prefetch) -> None:
        """Sort every chunk write by pack, then fetch each pack once: several at a time
        within the memory budget, each written once the packs before it are, so the
        files grow front to back in large writes."""
        by_pack: dict[bytes, dict[FilePlan, list[Piece]]] = defaultdict(dict)
        empty: dict[FilePlan, list[Piece]] = {}
        for file in files:
            if file.failed is not None:
                continue
            if not file.pieces:
                empty[file] = []
            for piece in file.pieces:
                by_pack[piece[2].pack_id].setdefault(file, []).append(piece)
        if empty:  # in no pack: created and finished with nothing to write
            await self._write_files(list(empty), [[] for _ in empty], empty)
        budget = Budget(self.memory_budget)
        limiter = trio.CapacityLimiter(self.parallel_packs)
        turn = trio.Event()
        turn.set()
        async with trio.open_nursery() as nursery:
            for pack_id, writes in by_pack.items():
                size = pack_extent(writes)
                await budget.take(size)
                await limiter.acquire_on_behalf_of(pack_id)
                done = trio.Event()
                task = PackTask(pack_id, writes, size, turn, done)
                nursery.start_soon(self._restore_pack, budget, limiter, prefetch, task)
                turn = done

    async def _restore_pack(
        self,
        budget: Budget,
        limiter: trio.CapacityLimiter,
        prefetch: Prefetch,
        task: PackTask,
    ) -> None:
        pack_id, writes = task.pack_id, task.writes
        try:
            if self._halt.reason is not None or all(file.failed is not None for file in writes):
                return
            try:
                pack = await prefetch.get(pack_id, task.size)
                # Here, not in the ordered write: the check of one pack overlaps the
                # writing of the pack before it.
                if not await self.pack_sync(pack_is_sound, pack_id, pack):
                    raise P2PBackupError("corrupted: it does not hash to its id")
            except P2PBackupError as exc:
                reason = named_pack(pack_id, str(exc))
                for file in writes:
                    file.failed = file.failed or reason
                return
            # Opened now, beside the packs before it; only the writes wait their turn.
            todo = [file for file in writes if file.failed is None]
            pieces = [writes[file] for file in todo]
            opened = await self.pack_sync(open_pieces, self.codec, pack_id, pack, pieces)
            del pack  # its chunks are out: the pack need not wait with them
            await task.after.wait()
            await self._write_files(todo, opened, writes)
        finally:
            task.done.set()
            budget.give(task.size)
            limiter.release_on_behalf_of(pack_id)

    async def _write_files(
        self, files: list[FilePlan], opened: list[Opened], writes: dict[FilePlan, list[Piece]]
    ) -> None:
        """Write what `files` have in one pack, opened already, in one worker call: a
        hand-off per chunk or per file cost more than the writes."""
        if self._halt.reason is not None:  # filled while this pack was on its way
            return
        # Not those that failed in a pack before this one meanwhile.
        kept = [
            (file, chunks) for file, chunks in zip(files, opened, strict=True) if not file.failed
        ]
        todo = [file for file, _ in kept]
        items = [
            Write(file.path, None if file.spread else file.entry, writes[file]) for file in todo
        ]
        try:
            outcomes = await self.pack_sync(
                write_pack, items, [chunks for _, chunks in kept], self._halt
            )
        except TargetFull as full:
            outcomes = full.done
        for file, (written, error, unset) in zip(todo, outcomes, strict=False):
            self.stats.bytes += written
            if error is not None:
                file.failed = file.failed or error
            elif file.spread:
                file.packs_left -= 1
            else:
                file.unset = unset
                self.stats.files_restored += 1
        await self._report()

    async def _report(self, force: bool = False) -> None:
        await self._reporter.report(self.stats, force)
