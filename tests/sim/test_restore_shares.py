"""A pack fetch for a restore asks k holders, the data shares' first, and no more, and
looks the pack up only when the routing table's nearest peers fall short."""

from __future__ import annotations

from typing import Any

import trio

from p2pbackup.simulations.mesh import SimPeer
from p2pbackup.store import MemoryShareStore
from tests.sim.helpers import by_id, equipped_mesh, holders, owner_store, place_pack


def _count_serves(stores: dict[bytes, MemoryShareStore]) -> list[tuple[bytes, int]]:
    """Every share the holders hand out from now on: (pack id, share index)."""
    served: list[tuple[bytes, int]] = []
    for store in stores.values():
        get = store.get

        def counted(pack_id: bytes, index: int, owner: bytes, get=get):  # type: ignore[no-untyped-def]
            share = get(pack_id, index, owner)
            if share is not None:
                served.append((pack_id, index))
            return share

        store.get = counted  # type: ignore[method-assign]
    return served


async def test_a_fetch_takes_only_the_data_shares_once_it_knows_the_pace(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 30, seed=21)
    packs = [await place_pack(mesh, 90_000 + i) for i in range(4)]
    served = _count_serves(stores)
    store = owner_store(mesh.peers[0])
    for data, pack_id in packs:
        assert await store.get(pack_id) == data
    # The first fetch keeps a spare request, as a stall shows only at the ceiling
    # until the store has seen shares come; after that, k shares and the data ones.
    later = {pack_id for _, pack_id in packs[1:]}
    assert sorted(index for pack_id, index in served if pack_id in later) == [
        0,
        0,
        0,
        1,
        1,
        1,
        2,
        2,
        2,
    ]


async def test_a_dead_data_holder_costs_one_more_share_not_the_pack(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 30, seed=22)
    first, (data, pack_id) = await place_pack(mesh, 80_000), await place_pack(mesh, 70_000)
    store = owner_store(mesh.peers[0])
    assert await store.get(first[1]) == first[0]  # the pace is known from here on
    held = holders(stores, pack_id)
    second_holder = next(nid for nid, indices in held.items() if indices == [1])
    mesh.crash(by_id(mesh)[second_holder])
    served = _count_serves(stores)
    assert await store.get(pack_id) == data
    assert len(served) == 3 and {0, 2} < {index for _, index in served}


def _count_lookups(sim_peer: SimPeer) -> list[bytes]:
    """The targets of every lookup the peer makes from now on."""
    dht = sim_peer.peer.dht
    targets: list[bytes] = []
    lookup = dht.lookup

    async def counted(target: bytes, *args: Any, **kwargs: Any) -> Any:
        targets.append(target)
        return await lookup(target, *args, **kwargs)

    dht.lookup = counted  # type: ignore[method-assign]
    return targets


async def test_a_mesh_that_fits_the_routing_table_is_restored_without_lookups(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The table's nearest peers to a pack are its holders when every peer is in it:
    a lookup per pack asked each of them for contacts, for nothing."""
    mesh, _ = await equipped_mesh(nursery, 12, seed=23)
    packs = [await place_pack(mesh, 60_000 + i) for i in range(3)]
    owner = mesh.peers[0]
    assert len(owner.peer.dht.table.closest(packs[0][1], 100)) == 11  # every peer
    lookups = _count_lookups(owner)
    store = owner_store(owner)
    for data, pack_id in packs:
        assert await store.get(pack_id) == data
    assert lookups == []


async def test_a_table_that_lacks_the_holders_leads_to_a_lookup(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """When the nearest peers the table knows hold nothing of the pack, the fetch looks
    the pack's neighbourhood up and gets it from the holders the lookup finds."""
    mesh, stores = await equipped_mesh(nursery, 30, seed=24)
    data, pack_id = await place_pack(mesh, 70_000)
    owner = mesh.peers[0]
    table = owner.peer.dht.table
    for node_id in holders(stores, pack_id):
        table.remove(node_id)
    assert not set(holders(stores, pack_id)) & {c.node_id for c in table.closest(pack_id, 100)}
    lookups = _count_lookups(owner)
    assert await owner_store(owner).get(pack_id) == data
    assert lookups == [pack_id]
