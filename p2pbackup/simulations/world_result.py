"""The end of a storage scenario's run: every pack restored, the figures, the result.

Kept apart from the world it reads so that what a run measures can be read
in one place: ground truth from the stores themselves, wrong bytes counted,
never expected, and wall-clock figures kept beside, not inside, the result.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import trio

from p2pbackup.errors import P2PBackupError
from p2pbackup.simulations.report import gini
from p2pbackup.simulations.world import RESTORE_CONCURRENCY, SimPeer, World


async def restore_all(world: World, via: SimPeer) -> dict[str, int]:
    """Fetch every pack through the restore path; count wrong bytes, never expected."""
    store = world.pack_store(via)
    limiter = trio.Semaphore(RESTORE_CONCURRENCY)
    restored: set[bytes] = set()
    corrupt = failed = 0

    async def one(pack_id: bytes) -> None:
        nonlocal corrupt, failed
        async with limiter:
            try:
                data = await store.get(pack_id)
            except P2PBackupError as exc:
                failed += 1
                world.note(f"restore of {pack_id.hex()[:12]} failed: {exc}")
                return
        if hashlib.blake2b(data).digest() == world.digests[pack_id]:
            restored.add(pack_id)
        else:
            corrupt += 1

    async with trio.open_nursery() as nursery:
        for pack_id in world.packs:
            nursery.start_soon(one, pack_id)
    snapshots_ok = sum(all(p in restored for p in snap) for snap in world.snapshots)
    return {
        "restore_packs_ok": len(restored),
        "restore_packs_failed": failed,
        "restore_packs_corrupt": corrupt,
        "snapshots_restorable_at_end": snapshots_ok,
    }


def metrics(world: World) -> dict[str, Any]:
    """The figures every storage scenario reports."""
    stats = [m.stats for m in world.storage.maintainers.values()]
    live, _ = world.share_counts()
    final: dict[int, int] = {}
    for pack_id in world.packs:
        final[live[pack_id]] = final.get(live[pack_id], 0) + 1
    repair_bytes = sum(s.repair_bytes for s in stats)
    return {
        "k": world.redundancy.k,
        "n": world.redundancy.n,
        "repair_threshold": world.storage.config.repair_threshold,
        "packs": len(world.packs),
        "snapshots": len(world.snapshots),
        "packs_lost": len(world.lost),
        "min_live_shares": world.min_live,
        "min_available_shares": world.min_available,
        "packs_at_n_at_end": final.get(world.redundancy.n, 0),
        "live_shares_at_end": {str(c): final[c] for c in sorted(final)},
        "min_restorable": min(world.series.restorable, default=1.0),
        "samples_with_two_shares_on_one_peer": world.doubled_samples,
        "repairs": sum(s.repairs for s in stats),
        "shares_rebuilt": sum(s.shares_rebuilt for s in stats),
        "handed_off": sum(s.handed_off for s in stats),
        "repair_bytes": repair_bytes,
        "lost_bytes": world.storage.lost_bytes,
        "repair_bytes_per_lost_byte": round(repair_bytes / max(world.storage.lost_bytes, 1), 3),
        "shares_outside_n_closest": misplaced(world),
        "audits": sum(s.audits for s in stats),
        "audits_failed": sum(s.audits_failed for s in stats),
        "messages": world.mesh.network.stats.sent,
        "messages_by_type": dict(sorted(world.mesh.network.stats.by_type.items())),
        "simulated_seconds": round(trio.current_time(), 3),
        **relayed_metrics(world),
    }


def relayed_metrics(world: World) -> dict[str, Any]:
    """With peers behind NATs: how many, and how many shares they hold at the end."""
    if not world.params.relayed:
        return {}
    relayed = {p.node_id for p in world.mesh.peers if not p.reachable}
    stores = world.storage.stores
    return {
        "relayed_peers": len(relayed),
        "shares_on_relayed_peers": sum(
            sum(1 for _ in stores[node_id].list_shares())
            for node_id in relayed
            if node_id in stores
        ),
    }


def misplaced(world: World) -> int:
    """Live shares held outside the n closest live storage peers of their pack."""
    n = world.redundancy.n
    candidates = [
        p.node_id
        for p in world.mesh.live()
        if p.node_id in world.storage.stores and p.node_id not in world.hostile
    ]
    keys = {node_id: int.from_bytes(node_id, "big") for node_id in candidates}
    holders: dict[bytes, list[bytes]] = {}
    owner = world.keys.identity.public_key  # the owner's shares, not others' junk
    for node_id in candidates:
        for info in world.storage.stores[node_id].list_shares():
            if info.owner == owner:
                holders.setdefault(info.pack_id, []).append(node_id)
    outside = 0
    for pack_id, held in holders.items():
        target = int.from_bytes(pack_id, "big")
        closest = set(sorted(candidates, key=lambda c: keys[c] ^ target)[:n])
        outside += sum(1 for node_id in held if node_id not in closest)
    return outside


def storage_per_peer(world: World) -> list[int]:
    return [
        world.storage.stores[p.node_id].used_bytes
        for p in world.mesh.live()
        if p.node_id in world.storage.stores and p.node_id not in world.hostile
    ]


def finish(world: World, scenario: str, summary: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The result a report is written from; wall-clock fields kept apart."""
    wall = time.perf_counter() - world.started
    per_peer = storage_per_peer(world)
    params = dict(world.params.__dict__)
    params.pop("seed", None)
    if not params.get("relayed"):
        params.pop("relayed", None)  # runs without relayed peers report as before
    return {
        "scenario": scenario,
        "seed": world.params.seed,
        "summary": summary,
        "params": params,
        "metrics": {**metrics(world), **extra, "storage_gini": gini(per_peer)},
        "series": world.series.as_dict(),
        "storage_per_peer": sorted(per_peer, reverse=True),
        "wall_seconds": round(wall, 2),
        "sim_seconds_per_wall_second": round(trio.current_time() / max(wall, 1e-9), 1),
    }
