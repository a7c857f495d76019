"""Rebalancing: when closer peers join, shares move to them and placement follows XOR.

A move is a copy: the far holder keeps its share until the newcomer proved the
index over several rounds and closer holders established the whole set, so no
pack ever has fewer than n distinct shares on its way (decision 0021).
"""

from __future__ import annotations

import dataclasses

import trio

from p2pbackup.simulations.storage import StorageMesh
from tests.sim.helpers import HOUR, STORAGE_CONFIG, placed

# Hourly rounds, newcomers vetted after an hour, leases of a day: copies, their proofs
# over three rounds and the drops (farthest first) all fit.
REBALANCE = dataclasses.replace(STORAGE_CONFIG, audit_interval=HOUR, vetting_period=HOUR)
LEASE = 24 * HOUR


def holders(storage: StorageMesh, pack_id: bytes) -> dict[bytes, list[int]]:
    mesh = storage.mesh
    return {
        p.node_id: storage.stores[p.node_id].indices(pack_id)
        for p in mesh.live()
        if p.node_id in storage.stores and storage.stores[p.node_id].indices(pack_id)
    }


def closest_storage_peers(storage: StorageMesh, pack_id: bytes, count: int) -> set[bytes]:
    owner = storage.mesh.peers[0].node_id  # it holds none of its own shares
    ranked = [i for i in storage.mesh.true_closest(pack_id, count + 1) if i != owner]
    return set(ranked[:count])


async def test_shares_move_to_closer_newcomers(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 41, 4, REBALANCE, LEASE)
    mesh = storage.mesh
    await trio.sleep(2 * REBALANCE.audit_interval)  # holders get to know their siblings
    for _ in range(40):  # the mesh triples: most packs get newcomers among their closest
        sim_peer = await mesh.add_peer(mesh.peers[1].address)
        storage.equip(sim_peer)
        storage.maintain(sim_peer)
    misplaced = sum(
        len(set(holders(storage, p)) - closest_storage_peers(storage, p, 10)) for p in packs
    )
    assert misplaced >= 10  # the joins really moved the closest peers
    fewest = 10
    for _ in range(12 * 6):  # twelve hours, all inside the lease
        await trio.sleep(REBALANCE.audit_interval / 6)
        for pack_id in packs:
            indices = {i for held in holders(storage, pack_id).values() for i in held}
            fewest = min(fewest, len(indices))
    assert fewest == 10  # never a share less on the way
    for pack_id in packs:
        held = holders(storage, pack_id)
        assert sorted(i for indices in held.values() for i in indices) == list(range(10))
        assert set(held) == closest_storage_peers(storage, pack_id, 10), pack_id.hex()
    stats = [m.stats for m in storage.maintainers.values()]
    assert sum(s.handed_off + s.shares_rebuilt for s in stats) >= misplaced
    # Each old copy dropped once its taker proved it. A taker new to the set that finds
    # itself closest may rebuild a share whose holder sits outside its lookup (that
    # copy is dropped too): rare, never for a share lost.
    assert sum(s.duplicates_dropped for s in stats) >= misplaced
    assert sum(s.repairs for s in stats) <= len(packs)
    mesh.stop()
