"""An owner's upkeep of the mesh: renewing leases while snapshots need them, pruning after.

Leases are renewed every `renew_interval` (and soon after the peer starts, in
case the machine was off for a while) for every pack the owner has placed and
not released. `prune` marks what the kept snapshots use, records the rest as
released in the snapshot set (so no device of this owner dedups against them
again), forgets them in the catalog, and asks their holders to drop them.
Shares a release does not reach go when their lease runs out.

Pruning while another device of the same owner backs up can release a pack
that device's new snapshot reuses; as with restic, prune from one device
while no other is backing up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.prune import unused_packs, used_chunks
from p2pbackup.backup.restore import BlobReader, load_index
from p2pbackup.backup.snapshot import Snapshot
from p2pbackup.backup.snapshot_index import SnapshotIndex
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.leases import release_pack, renew_pack
from p2pbackup.peer.control import Progress

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
        *,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.dht = dht
        self.identity = identity
        self.catalog = catalog
        self.index = index
        self.lease_seconds = lease_seconds
        self.renew_interval = renew_interval
        self.now = now
        self.last_renewal: dict[str, Any] = {}

    async def keep_leases(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await trio.sleep(min(FIRST_RENEWAL_DELAY, self.renew_interval))
        while True:
            try:
                await self.renew_all()
            except P2PBackupError as exc:
                log.warning("renewing leases: %s", exc)
            await trio.sleep(self.renew_interval)

    async def renew_all(self, progress: Progress | None = None) -> dict[str, Any]:
        """Extend the lease of every placed, unreleased pack to now + the lease period."""
        started = time.monotonic()
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
        self.last_renewal = {
            "packs": len(packs),
            "packs_renewed": renewed,
            "shares_renewed": holders,
            "lease_expiry": expiry,
            "seconds": round(time.monotonic() - started, 3),
        }
        log.info("renewed %d of %d packs until %d", renewed, len(packs), expiry)
        return self.last_renewal

    async def prune(
        self,
        reader: BlobReader,
        dry_run: bool,
        progress: Progress,
        kept: list[Snapshot] | None = None,
    ) -> dict[str, Any]:
        """Release every pack the kept snapshots do not use (caller holds the backup lock).

        `kept` overrides the snapshot list, for `forget --prune --dry-run`: the packs
        that forget would free."""
        started = time.monotonic()
        state = await self.index.state()
        snapshots = state.snapshots if kept is None else kept
        # Every index blob any snapshot lists: kept snapshots' chunks may be in any of them.
        locators = {loc for s in state.snapshots for loc in s.index}
        ordered = tuple(sorted(locators, key=lambda loc: loc.to_wire()))
        reader.index = await load_index(reader, ordered)
        used = await used_chunks(reader, snapshots)
        kept_index = {loc.pack_id for s in snapshots for loc in s.index}
        index = {cid: loc.pack_id for cid, loc in reader.index.items()}
        known = (set(index.values()) | self.catalog.pack_ids()) - state.released
        doomed = sorted(unused_packs(index, used, kept_index, known))
        dropped = 0
        if doomed and not dry_run:
            # The mesh learns first: from then on no device dedups against these packs.
            await self.index.release(doomed)
            self.catalog.release(doomed)
            limiter = trio.CapacityLimiter(PARALLEL_PACKS)

            async def one(pack_id: bytes) -> None:
                nonlocal dropped
                async with limiter:
                    dropped += await release_pack(self.dht, self.identity, pack_id, REQUEST_TIMEOUT)
                await progress({"packs_released": len(doomed), "shares_dropped": dropped})

            async with trio.open_nursery() as nursery:
                for pack_id in doomed:
                    nursery.start_soon(one, pack_id)
        return {
            "dry_run": dry_run,
            "snapshots": len(snapshots),
            "packs_kept": len(known) - len(doomed),
            "packs_released": len(doomed),
            "shares_dropped": dropped,
            "seconds": round(time.monotonic() - started, 3),
        }
