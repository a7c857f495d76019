"""An owner's upkeep of the mesh: renewing leases while snapshots need them, pruning after.

Leases are renewed every `renew_interval` for every pack the owner has placed
and not released; after a start, when the schedule kept beside the catalog
(`lease_floor`) says a renewal is due, or soon when it says nothing.

`prune` marks what the kept snapshots use, copies the used
blobs of mostly unused packs into new packs (publishing their new index blobs
for every snapshot to read), records the rest as released in the snapshot set
(so no device of this owner dedups against them again), forgets them in the
catalog, and asks their holders to drop them. Shares a release does not
reach go when their lease runs out. Killed at any step, prune leaves packs
that are still readable; the next prune finishes the job.

Pruning while another device of the same owner backs up can release a pack
that device's new snapshot reuses; as with restic, prune from one device
while no other is backing up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import trio

from p2pbackup.backup.blob_reader import BlobReader, load_index
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.backup.prune import PrunePlan, pack_extents, plan_prune, used_chunks
from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.backup.snapshot_index import IndexState, SnapshotIndex
from p2pbackup.base.offload import RunSync, to_thread
from p2pbackup.codec.packstore import PackUnavailable
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.leases import release_pack, renew_pack
from p2pbackup.peer.control import Progress
from p2pbackup.peer.lease_floor import LeaseFloor, read_floor, write_floor
from p2pbackup.peer.requests import PruneRequest
from p2pbackup.peer.results import PruneResult, RenewResult

log = logging.getLogger("p2pbackup.owner")
PARALLEL_PACKS = 8
REQUEST_TIMEOUT = 30.0
FIRST_RENEWAL_DELAY = 60.0


class Upkeep:
    def __init__(
        self,
        dht: DhtNode,
        identity: Identity,
        catalog: Catalog,
        index: SnapshotIndex,
        lease_seconds: int,
        renew_interval: float,
        new_engine: Callable[[], BackupEngine],
        *,
        now: Callable[[], float] = time.time,
        clock: Callable[[], float] = trio.current_time,
        run_sync: RunSync = to_thread,
        floor_file: Path | None = None,
    ) -> None:
        """`floor_file`: where `keep_leases` keeps its schedule across restarts (none:
        the first renewal comes soon after each start)."""
        self.dht = dht
        self.run_sync = run_sync
        self.identity = identity
        self.catalog = catalog
        self.index = index
        self.lease_seconds = lease_seconds
        self.renew_interval = renew_interval
        # The owner's: a repack writes its packs as a backup does.
        self.new_engine = new_engine
        self.now = now
        self.clock = clock
        self.last_renewal: RenewResult | None = None
        self.floor_file = floor_file

    async def keep_leases(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await trio.sleep(await self._first_wait())
        while True:
            try:
                done = await self.renew_all()
            except P2PBackupError as exc:
                log.warning("renewing leases: %s", exc)
            else:
                if done.packs_renewed == done.packs:  # else the floor would overstate
                    await self._save_floor(done.lease_expiry)
            await trio.sleep(self.renew_interval)

    async def _first_wait(self) -> float:
        """Seconds until the first renewal after a start: when the saved schedule says
        one is due (at once if that is past), else soon. An owner with nothing placed
        yet starts the schedule now: whatever it places later is kept longer."""
        soon = min(FIRST_RENEWAL_DELAY, self.renew_interval)
        if self.floor_file is None:
            return soon
        now = self.now()
        floor = await self.run_sync(read_floor, self.floor_file)
        if floor is None and not self.catalog.pack_ids():
            await self._save_floor(int(now) + self.lease_seconds)
            return self.renew_interval
        due = None if floor is None else floor.due(self.lease_seconds, self.renew_interval)
        # Never past one interval: a clock set back, or a floor that says too much,
        # must not put renewals off beyond the usual schedule.
        return soon if due is None else min(self.renew_interval, max(soon, due - now))

    async def _save_floor(self, expiry: int) -> None:
        if self.floor_file is not None:
            floor = LeaseFloor(expiry, self.lease_seconds)
            await self.run_sync(write_floor, self.floor_file, floor)

    async def renew_all(self, progress: Progress | None = None) -> RenewResult:
        """Extend the lease of every placed, unreleased pack to now + the lease period."""
        started = self.clock()
        packs = sorted(self.catalog.pack_ids())
        expiry = int(self.now()) + self.lease_seconds
        renewed = holders = 0
        limiter = trio.CapacityLimiter(PARALLEL_PACKS)

        async def one(pack_id: bytes) -> None:
            nonlocal renewed, holders
            async with limiter:
                kept = await renew_pack(self.dht, self.identity, pack_id, expiry, REQUEST_TIMEOUT)
            renewed += kept > 0
            holders += kept
            if progress is not None:
                await progress({"packs_renewed": renewed, "packs": len(packs)})

        async with trio.open_nursery() as nursery:
            for pack_id in packs:
                nursery.start_soon(one, pack_id)
        self.last_renewal = RenewResult(
            packs=len(packs),
            packs_renewed=renewed,
            shares_renewed=holders,
            lease_expiry=expiry,
            seconds=round(self.clock() - started, 3),
        )
        log.info("renewed %d of %d packs until %d", renewed, len(packs), expiry)
        return self.last_renewal

    async def prune(
        self,
        reader: BlobReader,
        request: PruneRequest,
        progress: Progress,
        kept: list[Snapshot] | None = None,
    ) -> PruneResult:
        """Release every pack the kept snapshots do not use and repack the mostly unused
        ones (caller holds the backup lock).

        `kept` overrides the snapshot list, for `forget --prune --dry-run`: the packs
        that forget would free."""
        started = self.clock()
        state = await self.index.state()
        snapshots = state.snapshots if kept is None else kept
        plan, rescued = await self._plan(reader, state, snapshots, request.repack_below)
        if request.dry_run:
            doomed, repacked, written, dropped = plan.release, sorted(plan.repack), 0, 0
        else:
            doomed, repacked, written, dropped = await self._carry_out(
                reader, plan, rescued, progress
            )
        return PruneResult(
            dry_run=request.dry_run,
            snapshots=len(snapshots),
            packs_kept=plan.kept,
            packs_released=len(doomed),
            packs_repacked=len(repacked),
            bytes_repacked=sum(loc.length for p in repacked for _, loc in plan.repack[p]),
            packs_written=written,
            shares_dropped=dropped,
            seconds=round(self.clock() - started, 3),
        )

    async def _plan(
        self,
        reader: BlobReader,
        state: IndexState,
        snapshots: list[Snapshot],
        repack_below: float,
    ) -> tuple[PrunePlan, list[Locator]]:
        """What to release and repack, and the index blobs of forgotten snapshots to keep.

        Leaves `reader` knowing every chunk location read, for the repack."""
        kept_ids = {s.snapshot_id for s in snapshots}
        gone = [s for s in (*state.snapshots, *state.forgotten) if s.snapshot_id not in kept_ids]
        # The blobs kept snapshots read (theirs and every repack's), and the blobs that
        # go with the forgotten snapshots, read one by one in case a kept chunk's only
        # location is in one of those.
        kept_blobs = state.index_blobs(snapshots) if snapshots else ()
        other_blobs = sorted(
            set(state.index_blobs(gone)) - set(kept_blobs), key=lambda loc: loc.to_wire()
        )
        index = await load_index(reader, kept_blobs, released=state.released)
        others = {
            blob: await load_index(reader, (blob,), released=state.released) for blob in other_blobs
        }
        everything: dict[bytes, Locator] = {}
        for found in others.values():
            everything.update(found)
        everything.update(index)
        reader.index = everything
        used = await used_chunks(reader, snapshots)
        rescued = _rescue(index, used, others)
        index_packs = {loc.pack_id for loc in (*kept_blobs, *rescued)}
        known = (
            self.catalog.pack_ids()
            | {loc.pack_id for loc in everything.values()}
            | {loc.pack_id for loc in (*kept_blobs, *other_blobs)}
        ) - state.released
        sizes = pack_extents(everything)
        for pack_id, _, _, size, _ in self.catalog.packs():
            sizes[pack_id] = max(size, sizes.get(pack_id, 0))
        return plan_prune(index, used, index_packs, known, sizes, repack_below), rescued

    async def _carry_out(
        self, reader: BlobReader, plan: PrunePlan, rescued: list[Locator], progress: Progress
    ) -> tuple[list[bytes], list[bytes], int, int]:
        """Repack, publish the new locations, release: the packs released and repacked,
        and the packs written and shares dropped."""
        doomed = plan.release
        new_blobs: list[Locator] = []
        repacked: list[bytes] = []
        written = dropped = 0
        if plan.repack:
            new_blobs, repacked, placed = await self._repack(reader, plan, progress)
            written = len(placed)
            # A pack that could not be fetched stays whole, and is not released;
            # nor is one the repack (re)wrote.
            keep = (set(plan.repack) - set(repacked)) | placed
            doomed = [p for p in doomed if p not in keep]
        if new_blobs or rescued:
            # Before any release: the kept snapshots must find the new locations.
            await self.index.reindex(new_blobs + rescued)
        if doomed:
            dropped = await self._release(doomed, progress)
        return doomed, repacked, written, dropped

    async def _repack(
        self, reader: BlobReader, plan: PrunePlan, progress: Progress
    ) -> tuple[list[Locator], list[bytes], set[bytes]]:
        """Copy the used blobs of the plan's mostly unused packs into new packs.

        Returns the new index blobs, the packs whose blobs all moved, and the packs
        written. A pack that cannot be rebuilt now is left as it is."""
        engine = self.new_engine()
        moved: list[bytes] = []

        async def blobs() -> AsyncIterator[tuple[bytes, bytes]]:
            for pack_id, items in sorted(plan.repack.items()):
                try:
                    data = await reader.pack(pack_id)
                except PackUnavailable as exc:
                    log.warning("not repacking %s: %s", pack_id.hex()[:12], exc)
                    continue
                for chunk_id, loc in items:
                    yield chunk_id, data[loc.offset : loc.offset + loc.length]
                moved.append(pack_id)
                await progress({"packs_repacked": len(moved), "packs_to_repack": len(plan.repack)})

        new_blobs = await engine.repack(blobs())
        return new_blobs, moved, engine.placed

    async def _release(self, doomed: list[bytes], progress: Progress) -> int:
        """Record the packs as released, forget them, and ask their holders to drop them."""
        # The mesh learns first: from then on no device dedups against these packs.
        await self.index.release(doomed)
        await self.run_sync(self.catalog.release, doomed)
        limiter = trio.CapacityLimiter(PARALLEL_PACKS)
        dropped = 0

        async def one(pack_id: bytes) -> None:
            nonlocal dropped
            async with limiter:
                # Not `dropped += await ...`: that reads `dropped` before the await, and
                # concurrent releases would overwrite each other's counts.
                count = await release_pack(self.dht, self.identity, pack_id, REQUEST_TIMEOUT)
            dropped += count
            await progress({"packs_released": len(doomed), "shares_dropped": dropped})

        async with trio.open_nursery() as nursery:
            for pack_id in doomed:
                nursery.start_soon(one, pack_id)
        return dropped


def _rescue(
    index: dict[bytes, Locator], used: set[bytes], others: dict[Locator, dict[bytes, Locator]]
) -> list[Locator]:
    """Blobs of forgotten snapshots that hold the only location of a chunk still used.

    They are kept and published for every snapshot to read; `index` learns the
    locations. Only a chunk two devices sent at once can need this."""
    missing = used - index.keys()
    rescued = []
    for blob, found in others.items():
        have = missing & found.keys()
        if have:
            rescued.append(blob)
            index.update((chunk_id, found[chunk_id]) for chunk_id in have)
            missing -= have
    return rescued
