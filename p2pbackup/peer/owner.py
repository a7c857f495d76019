"""What a peer does for its owner: back up, list, browse and restore snapshots.

These are the control operations behind `backup`, `snapshots`, `ls` and
`restore` (and `check`, `repair`, `forget`, `prune` and `renew`). They run
inside the peer (which holds the owner's keys and knows the mesh) and report
progress to the CLI through the control socket. Each takes a typed request
and gives a typed result; `endpoint` checks the one and flattens the other.
"""

from __future__ import annotations

import dataclasses
import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from p2pbackup.backup.blob_reader import BlobReader, load_index
from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.backup.restore import RestoreEngine
from p2pbackup.backup.retention import apply_policy
from p2pbackup.backup.snapshot import Snapshot
from p2pbackup.backup.snapshot_index import SnapshotIndex, find_snapshot
from p2pbackup.base import defaults
from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.browse import inside_snapshot, list_entries
from p2pbackup.peer.chunk_learning import learn_chunks
from p2pbackup.peer.control import Operation, Progress, endpoint
from p2pbackup.peer.engine_frames import BackupJob, RestoreJob
from p2pbackup.peer.engine_process import (
    EngineProcesses,
    run_backup_process,
    run_restore_process,
)
from p2pbackup.peer.lease_floor import FLOOR_NAME
from p2pbackup.peer.pack_health import PackSurvey, survey_packs
from p2pbackup.peer.requests import (
    BackupRequest,
    CheckRequest,
    ForgetRequest,
    LsRequest,
    NoArgs,
    PruneRequest,
    RepairRequest,
    RestoreRequest,
)
from p2pbackup.peer.restore_targets import RestoreTargets
from p2pbackup.peer.results import (
    BackupResult,
    ForgetResult,
    HealthReport,
    ListedEntry,
    Listing,
    PruneResult,
    RenewResult,
    RestoreResult,
    SnapshotList,
)
from p2pbackup.peer.upkeep import Upkeep
from p2pbackup.shares.mesh_packs import UNPROVEN_FOR_BENCH, MeshPackStore
from p2pbackup.shares.redundancy import Redundancy, chosen_redundancy


class OwnerService:
    # The control operations, as the socket serves them (see `operations`).
    backup: Operation
    snapshots: Operation
    ls: Operation
    restore: Operation
    check: Operation
    repair: Operation
    forget: Operation
    prune: Operation
    renew: Operation

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
        clock: Callable[[], float] = trio.current_time,
        rng: random.Random | None = None,
        now: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
        settings: Callable[[], Redundancy] | None = None,
        whole_mesh_seconds: float = 0.0,
    ) -> None:
        self.keys = keys
        # Read again at each backup and repair: `config set` needs no restart (0034).
        self.settings = settings if settings is not None else lambda: redundancy
        # Durations are read off the event loop's clock (virtual in the simulator), and
        # audits draw from a generator that descends from the peer's own.
        self.clock = clock
        self.rng = rng if rng is not None else random.Random(dht.rng.getrandbits(64))
        # A simulated owner hands in a virtual wall clock and seeded nonces, to replay.
        self.now = now
        self.random_bytes = random_bytes
        self.codec = BlobCodec(keys, random_bytes=random_bytes)
        self.catalog_path = catalog_path
        self.catalog = Catalog(catalog_path)
        # A real peer's engines run in a child process; the simulator's run here.
        self.engines = EngineProcesses() if engine_process else None
        self.packs = MeshPackStore(
            dht,
            keys.identity,
            redundancy,
            run_sync=run_sync,
            now=now,
            prove=os.environ.get(UNPROVEN_FOR_BENCH) != "1",
            whole_mesh_seconds=whole_mesh_seconds,
            share_bytes=self.catalog.share_bytes,
        )
        self.index = SnapshotIndex(dht, keys)
        self.upkeep = Upkeep(
            dht,
            keys.identity,
            self.catalog,
            self.index,
            redundancy.lease_seconds,
            renew_interval,
            self.new_engine,
            run_sync=run_sync,
            clock=clock,
            now=now,
            floor_file=catalog_path.with_name(FLOOR_NAME),
        )
        self.run_sync = run_sync
        self.parallel_uploads = parallel_uploads
        self._backup_lock = trio.Lock()  # one catalog, one writer: a backup waits
        self._restore_targets = RestoreTargets()
        self._serve_operations()

    def _serve_operations(self) -> None:
        self.backup = endpoint(BackupRequest.from_args, self.back_up)
        self.snapshots = endpoint(NoArgs.from_args, self.list_snapshots)
        self.ls = endpoint(LsRequest.from_args, self.list_files)
        self.restore = endpoint(RestoreRequest.from_args, self.restore_snapshot)
        self.check = endpoint(CheckRequest.from_args, self.check_packs)
        self.repair = endpoint(RepairRequest.from_args, self.repair_packs)
        self.forget = endpoint(ForgetRequest.from_args, self.forget_snapshots)
        self.prune = endpoint(PruneRequest.from_args, self.prune_packs)
        self.renew = endpoint(NoArgs.from_args, self.renew_leases)

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

    async def back_up(self, request: BackupRequest, progress: Progress) -> BackupResult:
        host = request.host if request.host is not None else socket.gethostname()
        started = self.clock()
        async with self._backup_lock:
            chosen = await self._redundancy(request)
            self.packs.redundancy_for_new_packs(chosen)
            self.packs.refused.clear()
            self.packs.short.clear()
            try:
                state = await self.index.state()
                await learn_chunks(self.codec, self.packs, self.catalog, state, self.run_sync)
                parent = _latest_of(state.snapshots, request.paths)
                snapshot, stats, process = await self._run_backup(request, host, parent, progress)
                await self.index.add(snapshot)
                await self.run_sync(self.catalog.mark_indexed, snapshot.snapshot_id)
            finally:
                if request.redundancy is not None or request.happy is not None:
                    self.packs.redundancy_for_new_packs(await self.run_sync(self.settings))
        return BackupResult(
            snapshot.snapshot_id.hex(),
            snapshot.short_id,
            parent.snapshot_id.hex() if parent else None,
            stats,
            process,
            round(self.clock() - started, 3),
            chosen.label,
            [{"peer": p.hex(), "reason": r} for p, r in self.packs.refused.items()] or None,
            self.packs.short_summary(),
        )

    async def _redundancy(self, request: BackupRequest) -> Redundancy:
        """The owner's redundancy, read now, or the one this backup asks for."""
        setting: Redundancy = await self.run_sync(self.settings)
        return chosen_redundancy(setting, request.redundancy, request.happy)

    async def _run_backup(
        self, request: BackupRequest, host: str, parent: Snapshot | None, progress: Progress
    ) -> tuple[Snapshot, dict[str, Any], dict[str, Any] | None]:
        """The new snapshot, the engine's counts, and its process's (if it ran in one)."""
        if self.engines is not None:
            job = BackupJob(
                self.catalog_path,
                request.paths,
                host,
                request.tags,
                request.excludes,
                parent,
                self.parallel_uploads,
            )
            snapshot, child = await run_backup_process(
                self.keys, job, self.packs, progress, self.engines
            )
            return snapshot, child.stats, child.process
        engine = self.new_engine(progress, request.excludes)
        paths = list(request.paths)
        snapshot = await engine.run(paths, host=host, tags=request.tags, parent=parent)
        return snapshot, engine.stats.as_dict(), None

    def new_engine(
        self, progress: Progress | None = None, excludes: tuple[str, ...] = ()
    ) -> BackupEngine:
        """A backup engine in this process, on this owner's catalog and packs: the
        simulator's backups and every prune's repack."""
        return BackupEngine(
            self.codec,
            self.catalog,
            self.packs,
            run_sync=self.run_sync,
            progress=progress,
            excludes=excludes,
            parallel_uploads=self.parallel_uploads,
            now=self.now,
            random_bytes=self.random_bytes,
        )

    # ---- browsing --------------------------------------------------------

    async def list_snapshots(self, request: NoArgs, progress: Progress) -> SnapshotList:
        return SnapshotList([s.summary() for s in await self.index.list()])

    async def list_files(self, request: LsRequest, progress: Progress) -> Listing:
        state = await self.index.state()
        snapshot = find_snapshot(state.snapshots, request.snapshot)
        prefix = inside_snapshot(request.path, snapshot.paths)
        reader = BlobReader(self.codec, self.packs, {})
        # Every snapshot's index blobs are read; one that cannot be read matters only
        # if this snapshot's folder lists are in it.
        problems: list[str] = []
        reader.index = await load_index(reader, state.index_blobs(), problems, state.released)
        entries: list[ListedEntry] = []
        try:
            await list_entries(reader, snapshot.tree, b"", os.fsencode(prefix), entries)
        except P2PBackupError as exc:
            note = f"; unreadable index: {'; '.join(problems[:3])}" if problems else ""
            raise P2PBackupError(f"{exc}{note}") from None
        return Listing(snapshot.snapshot_id.hex(), entries)

    # ---- check -----------------------------------------------------------

    async def check_packs(self, request: CheckRequest, progress: Progress) -> HealthReport:
        """Live, audited shares of every pack a snapshot uses; with read_data, every chunk."""
        return await self._survey(progress, repair=False, read_data=request.read_data)

    async def repair_packs(self, request: RepairRequest, progress: Progress) -> HealthReport:
        """Rebuild now every share of every pack a snapshot uses that is not proven live;
        with `reencode`, first encode again each pack whose k/n differ from the setting."""
        target = await self.run_sync(self.settings) if request.reencode else None
        if target is None:
            return await self._survey(progress, repair=True, read_data=False)
        async with self._backup_lock:  # new packs and re-encoded ones: one redundancy
            self.packs.redundancy_for_new_packs(target)
            return await self._survey(progress, repair=True, read_data=False, reencode=target)

    async def _survey(
        self,
        progress: Progress,
        *,
        repair: bool,
        read_data: bool,
        reencode: Redundancy | None = None,
    ) -> HealthReport:
        started = self.clock()
        state = await self.index.state()
        reader = BlobReader(self.codec, self.packs, {})
        survey = PackSurvey(
            self.packs, self.keys.identity.public_key, self.rng, self.run_sync, reencode
        )
        report = await survey_packs(
            survey, reader, state, progress, repair=repair, read_data=read_data
        )
        return dataclasses.replace(report, seconds=round(self.clock() - started, 3))

    # ---- forget ----------------------------------------------------------

    async def forget_snapshots(self, request: ForgetRequest, progress: Progress) -> ForgetResult:
        """Forget named snapshots, or those a retention policy does not keep."""
        async with self._backup_lock:
            snapshots = await self.index.list()
            if request.snapshots:
                doomed = {find_snapshot(snapshots, name).snapshot_id for name in request.snapshots}
                keep = [s for s in snapshots if s.snapshot_id not in doomed]
                reasons = {s.snapshot_id: ["not named"] for s in keep}
            else:
                reasons = apply_policy(snapshots, request.policy()).reasons
                keep = [s for s in snapshots if s.snapshot_id in reasons]
                if snapshots and not keep:  # a mistyped --keep-tag, say
                    raise P2PBackupError(
                        f"these rules keep none of the {len(snapshots)} snapshots; "
                        "forget never drops everything (name snapshot ids to forget them all)"
                    )
            forget = [s for s in snapshots if s not in keep]
            if forget and not request.dry_run:
                await self.index.forget([s.snapshot_id for s in forget])
            pruned = None
            if request.prune:
                self.packs.redundancy_for_new_packs(await self.run_sync(self.settings))
                reader = BlobReader(self.codec, self.packs, {})
                pruned = await self.upkeep.prune(reader, request.pruning(), progress, keep)
        return ForgetResult(
            request.dry_run,
            [{**s.summary(), "reasons": reasons[s.snapshot_id]} for s in keep],
            [s.summary() for s in forget],
            pruned,
        )

    async def prune_packs(self, request: PruneRequest, progress: Progress) -> PruneResult:
        """Release the packs no kept snapshot uses any more."""
        async with self._backup_lock:  # repacked blobs go to packs of the current setting
            self.packs.redundancy_for_new_packs(await self.run_sync(self.settings))
            reader = BlobReader(self.codec, self.packs, {})
            return await self.upkeep.prune(reader, request, progress)

    async def renew_leases(self, request: NoArgs, progress: Progress) -> RenewResult:
        """Renew every lease now (the peer also does it every renew interval)."""
        return await self.upkeep.renew_all(progress)

    # ---- restore ---------------------------------------------------------

    async def restore_snapshot(self, request: RestoreRequest, progress: Progress) -> RestoreResult:
        with self._restore_targets.claim(Path(request.target)):
            return await self._restore(request, progress)

    async def _restore(self, request: RestoreRequest, progress: Progress) -> RestoreResult:
        state = await self.index.state()
        snapshot = find_snapshot(state.snapshots, request.snapshot)
        target = Path(request.target)
        if await self.run_sync(_holds_anything, target):
            raise P2PBackupError(f"{target} is not empty; restore into a new or empty folder")
        started = self.clock()
        process: dict[str, Any] | None = None
        if self.engines is not None:
            job = RestoreJob(
                snapshot, target, request.includes, state.index_blobs(), state.released
            )
            child = await run_restore_process(self.keys, job, self.packs, progress, self.engines)
            stats, process = child.stats, child.process
        else:
            engine = RestoreEngine(
                self.codec, self.packs, run_sync=self.run_sync, progress=progress
            )
            restored = await engine.run(
                snapshot,
                target,
                request.includes,
                index_blobs=state.index_blobs(),
                released=state.released,
            )
            stats = restored.as_dict()
        seconds = round(self.clock() - started, 3)
        return RestoreResult(snapshot.snapshot_id.hex(), stats, process, seconds)


def _latest_of(snapshots: list[Snapshot], paths: tuple[str, ...]) -> Snapshot | None:
    """The newest earlier snapshot of the same paths: the new one's parent."""
    wanted = {os.path.abspath(p) for p in paths}
    same = [s for s in snapshots if set(s.paths) == wanted]
    return same[-1] if same else None


def _holds_anything(folder: Path) -> bool:
    """Whether a restore target already has entries (a directory listing: off the loop)."""
    return folder.exists() and any(folder.iterdir())
