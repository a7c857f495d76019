"""A small mesh's owner places packs without a lookup each, on the very peers a lookup
would pick; a peer that dies, or a mesh larger than the table, brings lookups back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from p2pbackup.base.offload import inline
from p2pbackup.dht.node import DhtNode
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy
from p2pbackup.simulations.mesh import SimMesh
from p2pbackup.store import MemoryShareStore
from tests.sim.helpers import KEYS, by_distance, equipped_mesh, holders, new_pack

SMALL_MESH = 10  # nine peers besides the owner: fewer than a lookup wants (k = 20)


def counting_lookups(dht: DhtNode) -> list[bytes]:
    """The targets of the lookups `dht` runs from now on."""
    targets: list[bytes] = []
    lookup: Callable[..., Any] = dht.lookup

    async def counted(target: bytes, *args: Any, **kwargs: Any) -> Any:
        targets.append(target)
        return await lookup(target, *args, **kwargs)

    dht.lookup = counted  # type: ignore[method-assign]
    return targets


def store_of(dht: DhtNode, whole_mesh_seconds: float) -> MeshPackStore:
    return MeshPackStore(
        dht,
        KEYS.identity,
        Redundancy(k=3, n=6, happy=4),
        share_timeout=5.0,
        run_sync=inline,
        whole_mesh_seconds=whole_mesh_seconds,
    )


async def placing_owner(
    nursery: trio.Nursery, size: int, seed: int
) -> tuple[SimMesh, dict[bytes, MemoryShareStore], list[bytes], MeshPackStore]:
    """A mesh of `size` peers, its stores, the lookups its first peer runs from now on,
    and that peer's pack store with the whole-mesh rule on."""
    mesh, stores = await equipped_mesh(nursery, size, seed=seed)
    dht = mesh.peers[0].peer.dht
    return mesh, stores, counting_lookups(dht), store_of(dht, 60.0)


async def test_a_small_mesh_places_on_the_closest_peers_with_one_lookup(
    nursery: trio.Nursery,
) -> None:
    mesh, stores, looked_up, store = await placing_owner(nursery, SMALL_MESH, 54)
    packs = [new_pack(mesh, 3_000) for _ in range(5)]
    for data, pack_id in packs:
        await store.put(pack_id, data)
    assert len(looked_up) == 1
    for _, pack_id in packs:
        closest = [p.node_id for p in by_distance(mesh, pack_id)[:6]]
        assert holders(stores, pack_id) == {nid: [i] for i, nid in enumerate(closest)}


async def test_a_peer_that_died_costs_one_placement_then_packs_are_looked_up(
    nursery: trio.Nursery,
) -> None:
    mesh, stores, looked_up, store = await placing_owner(nursery, SMALL_MESH, 55)
    first, pack_id = new_pack(mesh, 3_000)
    await store.put(pack_id, first)
    data, pack_id = new_pack(mesh, 3_000)
    dead = by_distance(mesh, pack_id)[0]
    mesh.crash(dead)
    await store.put(pack_id, data)
    held = holders(stores, pack_id)
    assert dead.node_id not in held and len(held) == 6
    again, pack_id = new_pack(mesh, 3_000)
    await store.put(pack_id, again)
    assert len(looked_up) == 2  # the first pack's, and the one after the failure


async def test_a_mesh_larger_than_a_lookup_wants_looks_up_every_pack(
    nursery: trio.Nursery,
) -> None:
    mesh, _, looked_up, store = await placing_owner(nursery, 21, 56)  # 20 others: k
    for _ in range(2):
        data, pack_id = new_pack(mesh, 3_000)
        await store.put(pack_id, data)
    assert len(looked_up) == 2
