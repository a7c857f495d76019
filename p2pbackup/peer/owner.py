"""What a peer does for its owner: back up, list, browse and restore snapshots.

These are the control operations behind `backup`, `snapshots`, `ls` and
`restore`. They run inside the peer (which holds the owner's keys and knows
the mesh) and report progress to the CLI through the control socket.
"""

from __future__ import annotations

import os
import random
import socket
import time
from pathlib import Path
from typing import Any

import trio

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.backup.restore import BlobReader, RestoreEngine, load_index
from p2pbackup.backup.retention import RetentionPolicy, apply_policy
from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.backup.snapshot_index import IndexState, SnapshotIndex, find_snapshot
from p2pbackup.backup.tree import EntryKind, Tree
from p2pbackup.base import defaults
from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.owner_check import PackHealth, check_pack
from p2pbackup.maintenance.repair import repair_pack
from p2pbackup.peer.control import Operation, Progress
from p2pbackup.peer.engine_process import (
    BackupJob,
    EngineProcesses,
    RestoreJob,
    run_backup_process,
    run_restore_process,
)
from p2pbackup.peer.upkeep import REPACK_BELOW, Upkeep
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise P2PBackupError(f"{what} must be a list of text")
    return tuple(value)


def _policy(args: dict[str, Any]) -> RetentionPolicy:
    counts = {}
    for name in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"):
        value = args.get(name) or 0
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise P2PBackupError(f"{name} must be a whole number of at least 0")
        counts[name] = value
    tags = frozenset(_strings(args.get("keep_tags"), "keep_tags"))
    return RetentionPolicy(**counts, keep_tags=tags)


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise P2PBackupError(f"missing `{name}`")
    return value


class OwnerService:
    def __init__(
        self,
        keys: OwnerKeys,
        dht: DhtNode,
        catalog_path: Path,
        redundancy: Redundancy,
        *,
        run_sync: RunSync = to_thread,
        parallel_uploads: int = 4,
        renew_interval: float = defaults.RENEW_INTERVAL,
        engine_process: bool = False,
    ) -> None:
        self.keys = keys
        self.codec = BlobCodec(keys)
        self.catalog_path = catalog_path
        self.catalog = Catalog(catalog_path)
        # A real peer backs up and restores in a child process (see `engine_process`);
        # the simulator and the in-process tests run the same engines here, on their
        # own clock.
        self.engines = EngineProcesses() if engine_process else None
        self.packs = MeshPackStore(dht, keys.identity, redundancy, run_sync=run_sync)
        self.index = SnapshotIndex(dht, keys)
        self.upkeep = Upkeep(
            dht,
            keys.identity,
            self.catalog,
            self.index,
            redundancy.lease_seconds,
            renew_interval,
            run_sync=run_sync,
        )
        self.run_sync = run_sync
        self.parallel_uploads = parallel_uploads
        # One catalog, one writer: a second backup waits for the first.
        self._backup_lock = trio.Lock()

    def close(self) -> None:
        self.catalog.close()

    def operations(self) -> dict[str, Operation]:
        return {
            "backup": self.backup,
            "snapshots": self.snapshots,
            "ls": self.ls,
            "restore": self.restore,
            "check": self.check,
            "repair": self.repair,
            "forget": self.forget,
            "prune": self.prune,
            "renew": self.renew,
        }

    # ---- backup ----------------------------------------------------------

    async def backup(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        paths = _strings(args.get("paths"), "paths")
        if not paths:
            raise P2PBackupError("name at least one path to back up")
        tags = _strings(args.get("tags"), "tags")
        excludes = _strings(args.get("excludes"), "excludes")
        host = args.get("host") if isinstance(args.get("host"), str) else socket.gethostname()
        started = time.monotonic()
        async with self._backup_lock:
            state = await self.index.state()
            snapshots = state.snapshots
            self.catalog.release(state.released - self.catalog.released())
            await self._learn_chunks(state)
            parent = _latest_of(snapshots, paths)
            extra: dict[str, Any] = {}
            if self.engines is not None:
                job = BackupJob(
                    self.catalog_path,
                    paths,
                    str(host),
                    tags,
                    excludes,
                    parent,
                    self.parallel_uploads,
                )
                snapshot, child = await run_backup_process(
                    self.keys, job, self.packs, progress, self.engines
                )
                stats = child.stats
                extra["engine_process"] = child.process
            else:
                engine = BackupEngine(
                    self.codec,
                    self.catalog,
                    self.packs,
                    run_sync=self.run_sync,
                    progress=progress,
                    excludes=excludes,
                    parallel_uploads=self.parallel_uploads,
                )
                snapshot = await engine.run(list(paths), host=str(host), tags=tags, parent=parent)
                stats = engine.stats.as_dict()
            await self.index.add(snapshot)
            self.catalog.mark_indexed(snapshot.snapshot_id)
        return {
            "snapshot_id": snapshot.snapshot_id.hex(),
            "short_id": snapshot.short_id,
            "parent": parent.snapshot_id.hex() if parent else None,
            **stats,
            **extra,
            "seconds": round(time.monotonic() - started, 3),
        }

    async def _learn_chunks(self, state: IndexState) -> None:
        """Chunks other devices (or this owner before a recovery) placed need not be sent
        again, nor chunks another device's prune moved."""
        reader = BlobReader(self.codec, self.packs, {})
        for snapshot in state.snapshots:
            if self.catalog.is_indexed(snapshot.snapshot_id):
                continue
            index = await load_index(reader, snapshot.index, released=state.released)
            self.catalog.add_locators(index.items())
            for locator in snapshot.index:
                self.catalog.add_index_blob(locator)
            self.catalog.mark_indexed(snapshot.snapshot_id)
        known = set(self.catalog.index_blobs())
        for locator in state.reindexed:
            if locator not in known and locator.pack_id not in state.released:
                index = await load_index(reader, (locator,), released=state.released)
                self.catalog.add_locators(index.items())
                self.catalog.add_index_blob(locator)

    # ---- browsing --------------------------------------------------------

    async def snapshots(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        return {"snapshots": [s.summary() for s in await self.index.list()]}

    async def ls(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        state = await self.index.state()
        snapshot = find_snapshot(state.snapshots, _text(args, "snapshot"))
        prefix = str(args.get("path") or "").strip("/")
        reader = BlobReader(self.codec, self.packs, {})
        # Every snapshot's index blobs are read; one that cannot be read matters only
        # if this snapshot's folder lists are in it.
        problems: list[str] = []
        reader.index = await load_index(reader, state.index_blobs(), problems, state.released)
        entries: list[dict[str, Any]] = []
        try:
            await self._list(reader, snapshot.tree, b"", os.fsencode(prefix), entries)
        except P2PBackupError as exc:
            note = f"; unreadable index: {'; '.join(problems[:3])}" if problems else ""
            raise P2PBackupError(f"{exc}{note}") from None
        return {"snapshot": snapshot.snapshot_id.hex(), "entries": entries}

    async def _list(
        self,
        reader: BlobReader,
        tree_id: bytes,
        relative: bytes,
        prefix: bytes,
        out: list[dict[str, Any]],
    ) -> None:
        tree = Tree.decode(await reader.blob(tree_id))
        for entry in tree.entries:
            path = os.path.join(relative, entry.name)
            inside = not prefix or path == prefix or path.startswith(prefix + b"/")
            leads_there = prefix.startswith(path + b"/")
            if inside:
                out.append(
                    {
                        "path": os.fsdecode(path),
                        "type": entry.kind.name.lower(),
                        "size": entry.size,
                        "mode": entry.mode,
                        "mtime": entry.mtime_ns / 1e9,
                        **({"target": os.fsdecode(entry.target)} if entry.target else {}),
                    }
                )
            if entry.kind is EntryKind.DIR and entry.subtree and (inside or leads_there):
                await self._list(reader, entry.subtree, path, prefix, out)

    # ---- check -----------------------------------------------------------

    async def check(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """Live, audited shares of every pack a snapshot uses; with read_data, every chunk."""
        return await self._each_pack(args, progress, repair=False)

    async def repair(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """Rebuild now every share of every pack a snapshot uses that is not proven live."""
        return await self._each_pack(args, progress, repair=True)

    async def _each_pack(
        self, args: dict[str, Any], progress: Progress, *, repair: bool
    ) -> dict[str, Any]:
        started = time.monotonic()
        state = await self.index.state()
        reader = BlobReader(self.codec, self.packs, {})
        locators = state.index_blobs()
        # An index blob that cannot be read is reported, and its pack is checked (and
        # repaired) like the others: it may be the only way back to it.
        index_errors: list[str] = []
        index = await load_index(reader, locators, index_errors, state.released)
        packs = sorted({loc.pack_id for loc in index.values()} | {loc.pack_id for loc in locators})
        rng = random.Random()
        owner = self.keys.identity.public_key
        healths: list[PackHealth] = []
        placed = 0
        limiter = trio.CapacityLimiter(8)

        async def one(pack_id: bytes) -> None:
            nonlocal placed
            async with limiter:
                if repair:
                    health, rebuilt = await repair_pack(
                        self.packs.dht, self.packs, pack_id, owner, rng, 30.0, self.run_sync
                    )
                    placed += rebuilt
                else:
                    health = await check_pack(self.packs.dht, pack_id, owner, rng, 30.0)
                healths.append(health)
                await progress({"packs_checked": len(healths), "packs": len(packs)})

        async with trio.open_nursery() as nursery:
            for pack_id in packs:
                nursery.start_soon(one, pack_id)
        result: dict[str, Any] = {
            "snapshots": len(state.snapshots),
            "packs": len(packs),
            "healthy": sum(1 for h in healths if h.n and h.live == h.n),
            "degraded": sum(1 for h in healths if h.recoverable and h.live < h.n),
            "unrecoverable": sum(1 for h in healths if not h.recoverable),
            "min_live_shares": min((h.live for h in healths), default=0),
            "unrecoverable_packs": sorted(h.pack_id.hex() for h in healths if not h.recoverable),
            "index_errors": index_errors,
        }
        if repair:
            # The counts above are what the repair found; this is what it rebuilt.
            result["shares_rebuilt"] = placed
        if args.get("read_data"):
            result["chunks_read"], result["chunk_errors"] = await self._read_all(reader, index)
        result["seconds"] = round(time.monotonic() - started, 3)
        return result

    async def _read_all(
        self, reader: BlobReader, index: dict[bytes, Locator]
    ) -> tuple[int, list[str]]:
        """Fetch every pack once and open every chunk against its id."""
        by_pack: dict[bytes, list[tuple[bytes, Locator]]] = {}
        for chunk_id, locator in index.items():
            by_pack.setdefault(locator.pack_id, []).append((chunk_id, locator))
        read, errors = 0, []
        for pack_id, chunks in sorted(by_pack.items()):
            try:
                for chunk_id, locator in chunks:
                    await reader.at(locator, chunk_id)
                    read += 1
            except P2PBackupError as exc:
                errors.append(f"pack {pack_id.hex()[:12]}: {exc}")
        return read, errors

    # ---- forget ----------------------------------------------------------

    async def forget(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """Forget named snapshots, or those a retention policy does not keep."""
        names = _strings(args.get("snapshots"), "snapshots")
        policy = _policy(args)
        if names and not policy.is_empty():
            raise P2PBackupError("name snapshots or give --keep-* rules, not both")
        if not names and policy.is_empty():
            raise P2PBackupError(
                "give at least one --keep-* rule or snapshot id; forget never drops everything"
            )
        async with self._backup_lock:
            snapshots = await self.index.list()
            if names:
                doomed = {find_snapshot(snapshots, name).snapshot_id for name in names}
                keep = [s for s in snapshots if s.snapshot_id not in doomed]
                reasons = {s.snapshot_id: ["not named"] for s in keep}
            else:
                decision = apply_policy(snapshots, policy)
                reasons = decision.reasons
                keep = [s for s in snapshots if s.snapshot_id in reasons]
            forget = [s for s in snapshots if s not in keep]
            dry_run = bool(args.get("dry_run"))
            if forget and not dry_run:
                await self.index.forget([s.snapshot_id for s in forget])
            result: dict[str, Any] = {
                "dry_run": dry_run,
                "keep": [{**s.summary(), "reasons": reasons[s.snapshot_id]} for s in keep],
                "forget": [s.summary() for s in forget],
            }
            if args.get("prune"):
                reader = BlobReader(self.codec, self.packs, {})
                result["prune"] = await self.upkeep.prune(
                    reader, dry_run, progress, keep, repack_below=_repack_below(args)
                )
        return result

    async def prune(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """Release the packs no kept snapshot uses any more."""
        async with self._backup_lock:
            reader = BlobReader(self.codec, self.packs, {})
            return await self.upkeep.prune(
                reader, bool(args.get("dry_run")), progress, repack_below=_repack_below(args)
            )

    async def renew(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        """Renew every lease now (the peer also does it every renew interval)."""
        return await self.upkeep.renew_all(progress)

    # ---- restore ---------------------------------------------------------

    async def restore(self, args: dict[str, Any], progress: Progress) -> dict[str, Any]:
        state = await self.index.state()
        snapshot = find_snapshot(state.snapshots, _text(args, "snapshot"))
        target = Path(_text(args, "target"))
        if not target.is_absolute():
            raise P2PBackupError("the restore target must be an absolute path")
        if target.exists() and any(target.iterdir()):
            raise P2PBackupError(f"{target} is not empty; restore into a new or empty folder")
        includes = _strings(args.get("includes"), "includes")
        started = time.monotonic()
        extra: dict[str, Any] = {}
        if self.engines is not None:
            job = RestoreJob(snapshot, target, includes, state.index_blobs(), state.released)
            child = await run_restore_process(self.keys, job, self.packs, progress, self.engines)
            stats = child.stats
            extra["engine_process"] = child.process
        else:
            engine = RestoreEngine(
                self.codec, self.packs, run_sync=self.run_sync, progress=progress
            )
            restored = await engine.run(
                snapshot,
                target,
                includes,
                index_blobs=state.index_blobs(),
                released=state.released,
            )
            stats = restored.as_dict()
        return {
            "snapshot_id": snapshot.snapshot_id.hex(),
            **stats,
            **extra,
            "seconds": round(time.monotonic() - started, 3),
        }


def _repack_below(args: dict[str, Any]) -> float:
    value = args.get("repack_below", REPACK_BELOW)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise P2PBackupError("`repack_below` is a fraction from 0 (never repack) to 1")
    return float(value)


def _latest_of(snapshots: list[Snapshot], paths: tuple[str, ...]) -> Snapshot | None:
    """The newest earlier snapshot of the same paths: the new one's parent."""
    wanted = {os.path.abspath(p) for p in paths}
    same = [s for s in snapshots if set(s.paths) == wanted]
    return same[-1] if same else None
