"""The owner's list of snapshots, kept in the mesh as a set-valued DHT record.

Each snapshot is one sealed entry of the owner's `snapshots` record. Adding
one writes a record holding just that entry: replicas merge sets, so two
devices of one owner backing up at once both land, and a quorum read later
returns the union. Forgetting adds a sealed tombstone naming the snapshot,
since a union can only grow; a forgotten snapshot stays forgotten whichever
replicas a later read meets. Nothing about a snapshot or a tombstone is
readable without the owner's key; the signature lets any replica refuse
forgeries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from p2pbackup.backup.snapshot import (
    REINDEX_PER_ENTRY,
    RELEASED_PER_ENTRY,
    SNAPSHOT_INDEX_NAME,
    Locator,
    Snapshot,
    open_forget,
    open_reindex,
    open_released,
    open_snapshot,
    seal_forget,
    seal_reindex,
    seal_released,
    seal_snapshot,
)
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.node import DhtNode
from p2pbackup.dht.records import Record, covers, merge, record_key, set_record
from p2pbackup.errors import P2PBackupError, QuorumNotReached

log = logging.getLogger("p2pbackup.backup")
_HINT = " (too few peers reachable; `status` shows how many this peer knows)"


@dataclass(frozen=True)
class IndexState:
    snapshots: list[Snapshot]  # not forgotten, oldest first
    released: frozenset[bytes]  # packs a prune released
    reindexed: tuple[Locator, ...] = ()  # index blobs a repack wrote, for every snapshot
    forgotten: tuple[Snapshot, ...] = ()  # tombstoned: prune releases what only they use

    def index_blobs(self, snapshots: list[Snapshot] | None = None) -> tuple[Locator, ...]:
        """The index blobs to read for `snapshots` (default: all), in a fixed order.

        A chunk may be listed in several blobs (a repack moved it; two devices sent it
        at once), so restore reads the blobs of every snapshot plus the repack's, and
        `load_index` skips locations in released packs."""
        chosen = self.snapshots if snapshots is None else snapshots
        own = {loc for s in chosen for loc in s.index} - set(self.reindexed)
        # A repack's blobs come last, so where both are readable its newer locations win.
        ordered = sorted(own, key=lambda loc: loc.to_wire()) + list(self.reindexed)
        return tuple(loc for loc in ordered if loc.pack_id not in self.released)


class SnapshotIndex:
    def __init__(self, dht: DhtNode, keys: OwnerKeys) -> None:
        self.dht = dht
        self.keys = keys

    @property
    def key(self) -> bytes:
        return record_key(self.keys.identity.public_key, SNAPSHOT_INDEX_NAME)

    async def add(self, snapshot: Snapshot) -> int:
        """Publish a snapshot; returns how many replicas acknowledged it."""
        return await self._write([seal_snapshot(snapshot, self.keys.snapshot_key)], "save")

    async def forget(self, snapshot_ids: list[bytes]) -> int:
        """Publish tombstones for these snapshots; returns how many replicas acknowledged."""
        if not snapshot_ids:
            return 0
        key = self.keys.snapshot_key
        return await self._write([seal_forget(sid, key) for sid in snapshot_ids], "forget")

    async def _write(self, values: list[bytes], what: str) -> int:
        record = set_record(self.keys.identity, SNAPSHOT_INDEX_NAME, values)
        try:
            write = await self.dht.publish(record)
        except QuorumNotReached as exc:
            raise QuorumNotReached(
                f"cannot {what} the snapshot in the mesh: {exc}{_HINT}"
            ) from None
        return len(write.acks)

    async def release(self, pack_ids: list[bytes]) -> int:
        """Record that a prune released these packs; returns replicas that acknowledged."""
        key = self.keys.snapshot_key
        values = [
            seal_released(pack_ids[i : i + RELEASED_PER_ENTRY], key)
            for i in range(0, len(pack_ids), RELEASED_PER_ENTRY)
        ]
        return await self._write(values, "record released packs of") if values else 0

    async def reindex(self, locators: list[Locator]) -> int:
        """Publish index blobs every snapshot reads (a repack's); returns replicas that
        acknowledged."""
        key = self.keys.snapshot_key
        values = [
            seal_reindex(locators[i : i + REINDEX_PER_ENTRY], key)
            for i in range(0, len(locators), REINDEX_PER_ENTRY)
        ]
        return await self._write(values, "record repacked chunks of") if values else 0

    async def _keep(self, record: Record) -> None:
        """Keep what the mesh holds of our index among this peer's own records, and write
        it back by quorum when it was news: a recovering owner's first read makes it the
        index's keeper, and heals replicas that lost entries (decision 0025)."""
        if not await self.dht.keep_own(record):
            return
        try:
            await self.dht.put(record)
        except QuorumNotReached as exc:
            log.info("re-publishing the snapshot index: %s", exc)

    async def _with_own(self, read: Record | None) -> Record | None:
        """What the mesh answered, and everything this peer published itself: replicas
        that restarted empty, or a read that reached the wrong peers (its replicas
        passed over as silent on a congested link), answered "no record", and the
        owner listed no snapshots, let `check` pass on none, and based its next backup
        on nothing. What the mesh lacks is written back by quorum."""
        mine = self.dht.own.get(self.key)
        if mine is None or covers(read, mine):
            return read
        merged = mine if read is None else merge(read, mine)
        try:
            await self.dht.put(merged)
        except QuorumNotReached as exc:
            log.info("re-publishing the snapshot index: %s", exc)
        return merged

    async def list(self) -> list[Snapshot]:
        """Every snapshot of this owner not forgotten, oldest first."""
        return (await self.state()).snapshots

    async def state(self) -> IndexState:
        """The snapshots not forgotten, and the packs released, as a quorum read shows them."""
        try:
            record = await self.dht.get(self.key)
        except QuorumNotReached as exc:
            raise QuorumNotReached(f"cannot read the snapshot list: {exc}{_HINT}") from None
        record = await self._with_own(record)
        if record is None:
            return IndexState([], frozenset())
        await self._keep(record)
        key = self.keys.snapshot_key
        snapshots, forgotten, released, reindexed = [], set(), set(), set()
        for value in record.values:
            gone = open_forget(value, key)
            if gone is not None:
                forgotten.add(gone)
                continue
            packs = open_released(value, key)
            if packs is not None:
                released.update(packs)
                continue
            blobs = open_reindex(value, key)
            if blobs is not None:
                reindexed.update(blobs)
                continue
            try:
                snapshots.append(open_snapshot(value, key))
            except P2PBackupError as exc:  # signed by us, so only a bug or an old format
                log.warning("skipping an unreadable snapshot entry: %s", exc)
        live = [s for s in snapshots if s.snapshot_id not in forgotten]
        dropped = [s for s in snapshots if s.snapshot_id in forgotten]
        return IndexState(
            sorted(live, key=lambda s: (s.time, s.snapshot_id)),
            frozenset(released),
            tuple(sorted(reindexed, key=lambda loc: loc.to_wire())),
            tuple(sorted(dropped, key=lambda s: (s.time, s.snapshot_id))),
        )


def find_snapshot(snapshots: list[Snapshot], name: str) -> Snapshot:
    """A snapshot among `snapshots` by id prefix, or `latest`; raises with a one-line reason."""
    if not snapshots:
        raise P2PBackupError("this owner has no snapshots yet")
    if name == "latest":
        return snapshots[-1]
    matches = [s for s in snapshots if s.snapshot_id.hex().startswith(name.lower())]
    if not matches:
        raise P2PBackupError(f"no snapshot matches {name!r}; `snapshots` lists them")
    if len(matches) > 1:
        raise P2PBackupError(f"{name!r} matches {len(matches)} snapshots; give more digits")
    return matches[0]
