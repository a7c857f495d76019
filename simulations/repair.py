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
from p2pbackup.maintenance.maintainer import MaintenanceConfig
from p2pbackup.peer.offload import inline
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy
from simulations.mesh import SimMesh
from simulations.storage import StorageMesh, virtual_now

DAY = 86_400.0
HOUR = 3_600.0
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
class _Tracker:
    """Samples every pack's live shares: the running minimum, losses, doubled holdings."""

    storage: StorageMesh
    packs: list[bytes] = field(default_factory=list)
    min_live: int = 10**9
    lost: set[bytes] = field(default_factory=set)
    doubled: int = 0  # samples in which some peer held two shares of one pack

    def sample(self, k: int) -> dict[int, int]:
        """Live distinct shares per pack right now, as a count of packs per share count."""
        live: dict[bytes, set[int]] = {pack_id: set() for pack_id in self.packs}
        doubled = False
        for store in self.storage.live_stores():
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


def _schedule(params: RepairParams, rng: random.Random) -> list[tuple[float, str]]:
    """Crash and join times, leaving time at the end for the last losses to be repaired:
    a fifth of the run, and at least four audit rounds (a silent holder counts as lost
    only after `lost_after` rounds)."""
    crashes = params.crashes if params.crashes is not None else params.peers * 2 // 5
    joins = params.joins if params.joins is not None else params.peers // 5
    settle = max(params.days * DAY * 0.2, 4 * params.audit_hours * HOUR)
    span = max(params.days * DAY - settle, 0.0)
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
        storage = StorageMesh(mesh, config)
        tracker = _Tracker(storage)
        for sim_peer in mesh.peers:
            storage.equip(sim_peer)
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
            tracker.packs.append(pack_id)
            async with limiter:
                await store.put(pack_id, data)

        async with trio.open_nursery() as placing:
            for _ in range(params.packs):
                placing.start_soon(place_one)
        placed_at = trio.current_time()
        mesh.crash(owner)  # the owner is gone for the rest of the run
        for sim_peer in mesh.live():
            storage.maintain(sim_peer)
        tracker.sample(redundancy.k)
        events = _schedule(params, random.Random(params.seed ^ 0xC4A05))
        end = placed_at + params.days * DAY
        crashes = joins = 0
        next_sample = placed_at + SAMPLE_EVERY
        for at, kind in [*events, (end - placed_at, "end")]:
            while next_sample <= placed_at + at:
                await trio.sleep_until(next_sample)
                tracker.sample(redundancy.k)
                next_sample += SAMPLE_EVERY
            await trio.sleep_until(placed_at + at)
            if kind == "crash":
                candidates = [p for p in mesh.live() if p is not owner]
                if len(candidates) > redundancy.n:
                    storage.crash(mesh.rng.choice(candidates))
                    crashes += 1
            elif kind == "join":
                bootstrap = mesh.rng.choice(mesh.live()).address
                sim_peer = await mesh.add_peer(bootstrap)
                storage.equip(sim_peer)
                storage.maintain(sim_peer)
                joins += 1
        final = tracker.sample(redundancy.k)
        stats = [m.stats for m in storage.maintainers.values()]
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
            "packs_lost": len(tracker.lost),
            "min_live_shares": tracker.min_live,
            "packs_at_n_at_end": final.get(redundancy.n, 0),
            "live_shares_at_end": {str(c): final[c] for c in sorted(final)},
            "samples_with_two_shares_on_one_peer": tracker.doubled,
            "repairs": sum(s.repairs for s in stats),
            "shares_rebuilt": sum(s.shares_rebuilt for s in stats),
            "handed_off": sum(s.handed_off for s in stats),
            "repair_bytes": repair_bytes,
            "lost_bytes": storage.lost_bytes,
            "repair_bytes_per_lost_byte": round(repair_bytes / max(storage.lost_bytes, 1), 3),
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
