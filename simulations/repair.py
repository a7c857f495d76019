"""Scenario `repair`: do packs survive a month of churn with their owner gone?

An owner places P packs (k of n shares each) on a mesh of N peers and goes
offline for good. Over D simulated days, peers crash one at a time at random
moments (40% of N by default) and new peers join (20% of N), while every
storage peer runs the same maintenance loop as `serve`: audits, repair,
rebalancing. The run samples every pack's live shares each simulated hour
and reports whether any pack fell under k (lost), the lowest live-share count
seen, whether any peer ever held two shares of one pack, and what repair cost.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pbackup.codec.packs import pack_id_of
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.config import DhtConfig
from p2pbackup.maintenance.maintainer import Maintainer, MaintenanceConfig
from p2pbackup.peer.offload import inline
from p2pbackup.shares.holder import HOLDER_REQUESTS, ShareHolder
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy
from p2pbackup.store.shares import MemoryShareStore
from simulations.mesh import SimMesh, SimPeer

DAY = 86_400.0
HOUR = 3_600.0
# Virtual time starts at 0; leases and descriptors want a wall-clock-like epoch.
EPOCH = 1_700_000_000.0
SAMPLE_EVERY = HOUR
PLACE_CONCURRENCY = 8
# Buckets refreshed every 6 h rather than hourly: over a simulated month hourly
# refreshes would be most of the traffic, and maintenance lookups keep the
# buckets near held packs fresh anyway.
REPAIR_DHT = DhtConfig(rpc_timeout=2.0, refresh_interval=6 * HOUR, republish_interval=6 * HOUR)


@dataclass(frozen=True)
class RepairParams:
    peers: int = 100
    packs: int = 200
    days: float = 30.0
    seed: int = 1
    crashes: int | None = None  # default: 40% of peers
    joins: int | None = None  # default: 20% of peers
    pack_bytes: int = 30_000
    audit_hours: float = 6.0
    join_concurrency: int = 25


@dataclass
class _Run:
    """What the scenario tracks while it runs."""

    mesh: SimMesh
    config: MaintenanceConfig
    stores: dict[bytes, MemoryShareStore] = field(default_factory=dict)
    maintainers: dict[bytes, Maintainer] = field(default_factory=dict)
    packs: list[bytes] = field(default_factory=list)
    min_live: int = 10**9
    lost: set[bytes] = field(default_factory=set)
    doubled: int = 0  # samples in which some peer held two shares of one pack
    lost_bytes: int = 0
    samples: int = 0

    def equip(self, sim_peer: SimPeer) -> None:
        """A share store and holder on the peer, as `serve` gives it."""
        store = MemoryShareStore(2**40)
        holder = ShareHolder(store, run_sync=inline, now=virtual_now)
        for kind in HOLDER_REQUESTS:
            sim_peer.peer.add_handler(kind, holder.handle)
        self.stores[sim_peer.node_id] = store

    def maintain(self, sim_peer: SimPeer) -> None:
        maintainer = Maintainer(
            sim_peer.peer.dht,
            self.stores[sim_peer.node_id],
            self.config,
            random.Random(sim_peer.node_id),
            run_sync=inline,
            now=virtual_now,
        )
        sim_peer.peer.add_task(maintainer.run)
        self.maintainers[sim_peer.node_id] = maintainer

    def crash(self, sim_peer: SimPeer) -> None:
        store = self.stores[sim_peer.node_id]
        self.lost_bytes += sum(info.size for info in store.list_shares())
        self.mesh.crash(sim_peer)

    def sample(self, k: int) -> dict[int, int]:
        """Live distinct shares per pack right now; updates the running minimum and losses."""
        self.samples += 1
        alive = [self.stores[p.node_id] for p in self.mesh.live() if p.node_id in self.stores]
        live: dict[bytes, set[int]] = {pack_id: set() for pack_id in self.packs}
        doubled = False
        for store in alive:
            seen: set[bytes] = set()
            for info in store.list_shares():
                if info.pack_id in live:
                    live[info.pack_id].add(info.idx)
                    doubled = doubled or info.pack_id in seen
                    seen.add(info.pack_id)
        self.doubled += doubled
        counts: dict[int, int] = {}
        for pack_id, indices in live.items():
            self.min_live = min(self.min_live, len(indices))
            if len(indices) < k:
                self.lost.add(pack_id)
            counts[len(indices)] = counts.get(len(indices), 0) + 1
        return counts


def virtual_now() -> float:
    return EPOCH + trio.current_time()


def _schedule(params: RepairParams, rng: random.Random) -> list[tuple[float, str]]:
    """Crash and join times, spread over the first 80% of the run so repair can finish."""
    crashes = params.crashes if params.crashes is not None else params.peers * 2 // 5
    joins = params.joins if params.joins is not None else params.peers // 5
    span = params.days * DAY * 0.8
    events = [(rng.uniform(0, span), "crash") for _ in range(crashes)]
    events += [(rng.uniform(0, span), "join") for _ in range(joins)]
    return sorted(events)


async def run_repair(params: RepairParams) -> dict[str, Any]:
    started = time.perf_counter()
    redundancy = Redundancy(lease_seconds=int(params.days * DAY * 4))
    config = MaintenanceConfig(
        audit_interval=params.audit_hours * HOUR,
        repair_threshold=redundancy.happy,
        request_timeout=10.0,
        share_timeout=30.0,
    )
    async with trio.open_nursery() as nursery:
        mesh = await SimMesh.create(
            nursery, params.seed, dht=REPAIR_DHT, encode=params.peers <= 200
        )
        await mesh.grow(params.peers, concurrency=params.join_concurrency)
        run = _Run(mesh, config)
        for sim_peer in mesh.peers:
            run.equip(sim_peer)
        owner = mesh.peers[0]
        keys = OwnerKeys.from_master(mesh.rng.randbytes(32))
        store = MeshPackStore(
            owner.peer.dht,
            keys.identity,
            redundancy,
            share_timeout=30.0,
            run_sync=inline,
            now=virtual_now,
        )
        data_rng = random.Random(params.seed ^ 0xDA7A)
        limiter = trio.Semaphore(PLACE_CONCURRENCY)

        async def place_one() -> None:
            data = data_rng.randbytes(params.pack_bytes)
            pack_id = pack_id_of(data)
            run.packs.append(pack_id)
            async with limiter:
                await store.put(pack_id, data)

        async with trio.open_nursery() as placing:
            for _ in range(params.packs):
                placing.start_soon(place_one)
        placed_at = trio.current_time()
        mesh.crash(owner)  # the owner is gone for the rest of the run
        for sim_peer in mesh.live():
            run.maintain(sim_peer)
        run.sample(redundancy.k)
        events = _schedule(params, random.Random(params.seed ^ 0xC4A05))
        end = placed_at + params.days * DAY
        crashes = joins = 0
        next_sample = placed_at + SAMPLE_EVERY
        for at, kind in [*events, (end - placed_at, "end")]:
            while next_sample <= placed_at + at:
                await trio.sleep_until(next_sample)
                run.sample(redundancy.k)
                next_sample += SAMPLE_EVERY
            await trio.sleep_until(placed_at + at)
            if kind == "crash":
                candidates = [p for p in mesh.live() if p is not owner]
                if len(candidates) > redundancy.n:
                    run.crash(mesh.rng.choice(candidates))
                    crashes += 1
            elif kind == "join":
                bootstrap = mesh.rng.choice(mesh.live()).address
                sim_peer = await mesh.add_peer(bootstrap)
                run.equip(sim_peer)
                run.maintain(sim_peer)
                joins += 1
        final = run.sample(redundancy.k)
        stats = [m.stats for m in run.maintainers.values()]
        repair_bytes = sum(s.repair_bytes for s in stats)
        result = {
            "scenario": "repair",
            "seed": params.seed,
            "peers": params.peers,
            "packs": params.packs,
            "days": params.days,
            "k": redundancy.k,
            "n": redundancy.n,
            "repair_threshold": config.repair_threshold,
            "audit_hours": params.audit_hours,
            "crashes": crashes,
            "joins": joins,
            "packs_lost": len(run.lost),
            "min_live_shares": run.min_live,
            "packs_at_n_at_end": final.get(redundancy.n, 0),
            "live_shares_at_end": {str(c): final[c] for c in sorted(final)},
            "samples_with_two_shares_on_one_peer": run.doubled,
            "repairs": sum(s.repairs for s in stats),
            "shares_rebuilt": sum(s.shares_rebuilt for s in stats),
            "handed_off": sum(s.handed_off for s in stats),
            "repair_bytes": repair_bytes,
            "lost_bytes": run.lost_bytes,
            "repair_bytes_per_lost_byte": round(repair_bytes / max(run.lost_bytes, 1), 3),
            "audits": sum(s.audits for s in stats),
            "audits_failed": sum(s.audits_failed for s in stats),
            "maintenance_lookups": sum(s.lookups for s in stats),
            "messages": mesh.network.stats.sent,
            "messages_by_type": dict(sorted(mesh.network.stats.by_type.items())),
            "simulated_seconds": round(trio.current_time(), 3),
        }
        mesh.stop()
    result["wall_seconds"] = round(time.perf_counter() - started, 2)
    return result
