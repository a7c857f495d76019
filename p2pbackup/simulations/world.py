"""A storage mesh with one owner's snapshots on virtual time: what storage scenarios build on.

A scenario builds a `World` (peers join, the owner backs up P packs as S
incremental snapshots), then drives its own events: crashes, sessions that
end and resume, disks that come back empty, partitions, hostile peers. Every
simulated hour a sampler records what the report plots: packs at each
live-share count, packs lost, restore availability, repair traffic, probe
lookups' hops and latency, live peers. At the end `world_result.restore_all`
fetches every pack through the real restore path and compares it with what
was backed up, so a corrupted share passed off as good data would show.

Ground truth comes from the stores themselves: a share is live when an
honest peer that is up holds it; it is durable while its disk exists (the
peer may be away); a pack is lost for good when fewer than k durable shares
remain.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pbackup.base.offload import inline
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.config import DhtConfig
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.config import MaintenanceConfig
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy
from p2pbackup.simulations.census import NOTHING, ShareCensus
from p2pbackup.simulations.mesh import MeshParams, SimMesh, SimPeer
from p2pbackup.simulations.storage import StorageMesh, virtual_now
from p2pbackup.store import MemoryShareStore

HOUR = 3_600.0
DAY = 86_400.0
# Buckets refreshed daily and contacts probed once quiet for an hour. Any
# message from a bucket's range counts as its refresh (BEP 5), and maintenance
# talks across the whole id space, so a walk is rarely due; with the defaults
# (hourly, 15 minutes) refresh walks and probes were a third of all traffic
# in a simulated month, though they found nothing maintenance had not.
WORLD_DHT = DhtConfig(
    rpc_timeout=2.0,
    refresh_interval=24 * HOUR,
    republish_interval=6 * HOUR,
    questionable_after=HOUR,
)
PLACE_CONCURRENCY = 8
RESTORE_CONCURRENCY = 8

Progress = Callable[[str], None]


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class WorldParams(MeshParams):
    packs: int = 100
    days: float = 1.0
    snapshots: int = 10  # the packs are backed up in this many incremental snapshots
    pack_bytes: int = 30_000
    audit_hours: float = 6.0
    # How long a peer must have answered before it takes rebalanced shares (and is
    # preferred for rebuilt ones): days on a real mesh, hours in a run of a day or two.
    vetting_hours: float = 12.0
    probe_lookups: int = 3  # per sampled hour
    join_concurrency: int = 25
    # The share of peers behind a NAT with no port mapping, reached only through relays.
    relayed: float = 0.0


@dataclass
class Series:
    hours: list[float] = field(default_factory=list)
    live_share_counts: list[dict[str, int]] = field(default_factory=list)
    packs_lost: list[int] = field(default_factory=list)
    restorable: list[float] = field(default_factory=list)
    repair_bytes: list[int] = field(default_factory=list)
    live_peers: list[int] = field(default_factory=list)
    lookup_hops: list[float | None] = field(default_factory=list)
    lookup_latency_ms: list[float | None] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[Any]]:
        return dict(self.__dict__)


@dataclass
class World:
    nursery: trio.Nursery
    params: WorldParams
    mesh: SimMesh
    storage: StorageMesh
    redundancy: Redundancy
    keys: OwnerKeys
    owner: SimPeer
    progress: Progress | None = None
    packs: list[bytes] = field(default_factory=list)
    digests: dict[bytes, bytes] = field(default_factory=dict)  # pack id -> hash of its bytes
    snapshots: list[list[bytes]] = field(default_factory=list)
    hostile: set[bytes] = field(default_factory=set)  # their shares are no good
    liars: set[bytes] = field(default_factory=set)  # lie about routing, keep shares well
    away: dict[bytes, SimPeer] = field(default_factory=dict)  # offline, disk kept
    lost: set[bytes] = field(default_factory=set)
    min_live: int = 10**9  # fewest shares of any pack on disks that still exist
    min_available: int = 10**9  # fewest shares of any pack reachable right then
    doubled_samples: int = 0
    series: Series = field(default_factory=Series)
    started: float = field(default_factory=time.perf_counter)
    # Per storage peer: what the census last read of its store, and of which version.
    _held: dict[bytes, tuple[object, int, int, frozenset[tuple[bytes, int]], bool]] = field(
        default_factory=dict
    )
    _census: ShareCensus = field(default_factory=ShareCensus)
    # Probe lookups and bootstrap choices: drawn from the seed, apart from the mesh's stream.
    _lookup_rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._lookup_rng = random.Random(self.params.seed ^ 0x100C)

    # ---- building -----------------------------------------------------

    @classmethod
    async def build(
        cls,
        nursery: trio.Nursery,
        params: WorldParams,
        *,
        capacity: Callable[[int], int] | None = None,
        setup: Callable[[World], None] | None = None,
        progress: Progress | None = None,
    ) -> World:
        """Peers join, get stores (of `capacity(i)` bytes), `setup` runs, the owner backs up."""
        started = time.perf_counter()  # the wall time reported counts the build too
        mesh = await SimMesh.create(
            nursery, params.seed, dht=WORLD_DHT, encode=params.peers <= 200, relayed=params.relayed
        )
        await mesh.grow(params.peers, concurrency=params.join_concurrency)
        # Leases outlast the run: expiry is the leases scenarios' business, not these.
        redundancy = Redundancy(lease_seconds=int((4 * params.days + 30) * DAY))
        config = MaintenanceConfig(
            audit_interval=params.audit_hours * HOUR,
            repair_threshold=redundancy.happy,
            request_timeout=10.0,
            share_timeout=30.0,
            vetting_period=params.vetting_hours * HOUR,
        )
        storage = StorageMesh(mesh, config)
        owner = mesh.peers[0]  # holds none of its own shares, as on a real peer
        for i, sim_peer in enumerate(mesh.peers[1:], start=1):
            storage.equip(sim_peer, capacity(i) if capacity else 2**40)
        keys = OwnerKeys.from_master(mesh.rng.randbytes(32))
        world = cls(nursery, params, mesh, storage, redundancy, keys, owner, progress)
        world.started = started
        if setup is not None:
            setup(world)
        await world._back_up()
        return world

    def pack_store(self, sim_peer: SimPeer) -> MeshPackStore:
        return MeshPackStore(
            sim_peer.peer.dht,
            self.keys.identity,
            self.redundancy,
            share_timeout=30.0,
            run_sync=inline,
            now=virtual_now,
        )

    async def _back_up(self) -> None:
        data_rng = random.Random(self.params.seed ^ 0xDA7A)
        store = self.pack_store(self.owner)
        limiter = trio.Semaphore(PLACE_CONCURRENCY)
        per_snapshot = max(1, -(-self.params.packs // max(self.params.snapshots, 1)))

        async def place(data: bytes) -> None:
            async with limiter:
                try:
                    await store.put(pack_id_of(data), data)
                except P2PBackupError as exc:  # e.g. too few peers with room
                    self.note(f"placing a pack failed: {exc}")

        for first in range(0, self.params.packs, per_snapshot):
            batch = [
                data_rng.randbytes(self.params.pack_bytes)
                for _ in range(min(per_snapshot, self.params.packs - first))
            ]
            for data in batch:
                self.packs.append(pack_id_of(data))
                self.digests[self.packs[-1]] = hashlib.blake2b(data).digest()
            async with trio.open_nursery() as placing:
                for data in batch:
                    placing.start_soon(place, data)
            # Each snapshot uses every pack so far: later backups reuse earlier chunks.
            self.snapshots.append(list(self.packs))

    def start_maintenance(self) -> None:
        for sim_peer in self.mesh.live():
            if sim_peer.node_id in self.storage.stores:
                self.storage.maintain(sim_peer)

    def note(self, line: str) -> None:
        if self.progress is not None:
            self.progress(line)

    # ---- events ---------------------------------------------------------

    def storage_peers(self) -> list[SimPeer]:
        return [p for p in self.mesh.live() if p is not self.owner]

    def crash(self, sim_peer: SimPeer) -> None:
        """Gone for good, disk and all."""
        self.storage.crash(sim_peer)
        self.away.pop(sim_peer.node_id, None)

    def leave(self, sim_peer: SimPeer) -> None:
        """Offline for a while; its disk (and shares) come back with it."""
        self.mesh.crash(sim_peer)
        self.away[sim_peer.node_id] = sim_peer

    async def come_back(self, sim_peer: SimPeer, *, empty: bool = False) -> None:
        """Back on the same address with the same id; with `empty`, its disk was lost."""
        self.away.pop(sim_peer.node_id, None)
        if empty:
            old = self.storage.stores[sim_peer.node_id]
            self.storage.lost_bytes += old.used_bytes
            self.storage.stores[sim_peer.node_id] = MemoryShareStore(old.capacity)
        await self.mesh.restart(sim_peer, self._bootstraps(), disk_kept=not empty)
        if sim_peer.node_id in self.storage.stores:
            self.storage.attach(sim_peer)
            self.storage.maintain(sim_peer)

    async def join(self, capacity: int = 2**40) -> SimPeer:
        sim_peer = await self.mesh.add_peer(self._bootstraps())
        self.storage.equip(sim_peer, capacity)
        self.storage.maintain(sim_peer)
        return sim_peer

    def _bootstraps(self) -> tuple[tuple[str, int], ...]:
        """Three live peers to join through, as a user lists a few friends: one that
        lies or is gone does not strand the newcomer."""
        return tuple(p.address for p in self.mesh.pick_live(self._lookup_rng, 3))

    # ---- sampling ---------------------------------------------------------

    def share_counts(self) -> tuple[Counter[bytes], Counter[bytes]]:
        """Per pack: how many distinct indices are live now (honest, up, reachable from
        the owner's side) and durable (honest, disk still there). The census keeps the
        counts by differences: most stores, most hours, neither change nor come or go."""
        doubled = False
        up = {p.node_id for p in self.mesh.live()}
        network, home = self.mesh.network, self.owner.address
        peers = {p.node_id: p for p in self.mesh.peers}
        owner = self.keys.identity.public_key  # others' shares under its pack ids: not its
        census = self._census
        for node_id, store in self.storage.stores.items():
            if node_id in self.hostile or not (node_id in up or node_id in self.away):
                census.store(node_id, NOTHING, False, False)
                continue
            reachable = node_id in up and network.connected(home, peers[node_id].address)
            held, twice = self._held_by(node_id, store, owner)
            census.store(node_id, held, reachable, True)
            doubled = doubled or twice
        self.doubled_samples += doubled
        return census.close_round()

    def _held_by(
        self, node_id: bytes, store: MemoryShareStore, owner: bytes
    ) -> tuple[frozenset[tuple[bytes, int]], bool]:
        """The owner's shares one store holds, and whether two are of one pack; read
        again only when the store's keys changed (most stores, most hours, do not)."""
        version = store.keys_version
        kept = self._held.get(node_id)
        if kept is not None and kept[:3] == (store, version, len(self.packs)):
            return kept[3], kept[4]
        packs = self.digests  # every pack of the world's owner, by id
        held = frozenset((p, i) for p, i, o in store.share_keys() if o == owner and p in packs)
        twice = len({pack_id for pack_id, _ in held}) < len(held)
        self._held[node_id] = (store, version, len(self.packs), held, twice)
        return held, twice

    def sample(self, lookups: tuple[float | None, float | None] = (None, None)) -> None:
        k = self.redundancy.k
        live, durable = self.share_counts()
        counts: dict[int, int] = {}
        for pack_id in self.packs:
            count, kept = live[pack_id], durable[pack_id]
            counts[count] = counts.get(count, 0) + 1
            self.min_live = min(self.min_live, kept)
            self.min_available = min(self.min_available, count)
            if kept < k:
                self.lost.add(pack_id)
        restorable = sum(all(live[p] >= k for p in snap) for snap in self.snapshots)
        s = self.series
        s.hours.append(round(trio.current_time() / HOUR, 4))
        s.live_share_counts.append({str(c): counts[c] for c in sorted(counts, reverse=True)})
        s.packs_lost.append(len(self.lost))
        s.restorable.append(round(restorable / max(len(self.snapshots), 1), 4))
        s.repair_bytes.append(sum(m.stats.repair_bytes for m in self.storage.maintainers.values()))
        s.live_peers.append(len(self.mesh.live()))
        s.lookup_hops.append(lookups[0])
        s.lookup_latency_ms.append(lookups[1])

    async def probe_lookups(self) -> tuple[float | None, float | None]:
        """A few lookups for random keys from random live peers: hops and latency now."""
        candidates = self.storage_peers()
        if not candidates or self.params.probe_lookups <= 0:
            return None, None
        hops: list[int] = []
        latency: list[float] = []

        async def one(source: SimPeer, target: bytes) -> None:
            began = trio.current_time()
            outcome = await source.peer.dht.lookup(target)
            hops.append(outcome.stats.hops)
            latency.append(trio.current_time() - began)

        jobs = [
            (self._lookup_rng.choice(candidates), self._lookup_rng.randbytes(20))
            for _ in range(self.params.probe_lookups)
        ]
        async with trio.open_nursery() as nursery:
            for source, target in jobs:
                nursery.start_soon(one, source, target)
        return (
            round(sum(hops) / len(hops), 3),
            round(1000 * sum(latency) / len(latency), 1),
        )

    async def sampler(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Sample every simulated hour, and tell the progress line once a simulated day."""
        task_status.started()
        self.sample()
        while True:
            await trio.sleep(HOUR)
            self.sample(await self.probe_lookups())
            hours = len(self.series.hours) - 1
            if hours % 24 == 0:
                wall = time.perf_counter() - self.started
                self.note(
                    f"day {hours // 24:g}/{self.params.days:g}: {len(self.mesh.live())} peers up, "
                    f"{len(self.lost)} packs lost, {wall:.0f} s"
                )

    def stop(self) -> None:
        self.mesh.stop()
