"""Placing and fetching pack shares on a simulated mesh of real peers."""

from __future__ import annotations

import os

import pytest
import trio

from p2pbackup.base.offload import inline
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.codec.packstore import PackUnavailable
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.net.transport import Remote
from p2pbackup.shares.holder import HOLDER_REQUESTS, ShareHolder
from p2pbackup.shares.mesh_packs import MeshPackStore, PlacementFailed, Redundancy
from p2pbackup.shares.messages import GetShare, ShareData
from p2pbackup.simulations.mesh import SimMesh, SimPeer
from p2pbackup.store import MemoryShareStore
from p2pbackup.wire.messages import Message
from tests.sim.conftest import build_mesh

KEYS = OwnerKeys.from_master(bytes(range(32)))


def equip(mesh: SimMesh, capacity: int = 2**30) -> dict[bytes, MemoryShareStore]:
    """Give every peer a share store, as `serve` does."""
    stores = {}
    for sim_peer in mesh.peers:
        store = MemoryShareStore(capacity)
        holder = ShareHolder(store, run_sync=inline)
        for kind in HOLDER_REQUESTS:
            sim_peer.peer.add_handler(kind, holder.handle)
        stores[sim_peer.node_id] = store
    return stores


def owner_store(sim_peer: SimPeer) -> MeshPackStore:
    return MeshPackStore(
        sim_peer.peer.dht, KEYS.identity, Redundancy(), share_timeout=5.0, run_sync=inline
    )


def holders(stores: dict[bytes, MemoryShareStore], pack_id: bytes) -> dict[bytes, list[int]]:
    return {nid: s.indices(pack_id) for nid, s in stores.items() if s.indices(pack_id)}


def xor(a: bytes, b: bytes) -> int:
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


async def test_share_i_goes_to_the_ith_closest_peer_and_never_two_on_one(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 40, seed=5)
    stores = equip(mesh)
    owner = mesh.peers[0]
    data = os.urandom(300_000)
    pack_id = pack_id_of(data)
    receipt = await owner_store(owner).put(pack_id, data)
    assert (receipt.k, receipt.n, receipt.placed) == (3, 10, 10)
    held = holders(stores, pack_id)
    assert owner.node_id not in held  # the owner's own peer holds none of its shares
    assert all(len(indices) == 1 for indices in held.values())
    others = sorted(
        (p for p in mesh.peers if p is not owner), key=lambda p: xor(p.node_id, pack_id)
    )
    assert [held[p.node_id][0] for p in others[:10]] == list(range(10))
    assert await owner_store(mesh.peers[7]).get(pack_id) == data


async def test_a_full_peer_refuses_and_the_next_closest_takes_its_share(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 30, seed=6)
    stores = equip(mesh)
    owner = mesh.peers[0]
    data = os.urandom(120_000)
    pack_id = pack_id_of(data)
    others = sorted(
        (p for p in mesh.peers if p is not owner), key=lambda p: xor(p.node_id, pack_id)
    )
    full = others[0]
    stores[full.node_id] = tiny = MemoryShareStore(10)
    holder = ShareHolder(tiny, run_sync=inline)
    for kind in HOLDER_REQUESTS:
        full.peer.add_handler(kind, holder.handle)
    receipt = await owner_store(owner).put(pack_id, data)
    assert receipt.placed == 10
    held = holders(stores, pack_id)
    assert full.node_id not in held
    assert held[others[10].node_id] == [0]  # share 0 moved to the 11th closest


async def test_too_few_peers_stops_with_how_many_were_found(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 6, seed=7)
    equip(mesh)
    data = os.urandom(50_000)
    with pytest.raises(PlacementFailed, match=r"only 5 distinct peers took a share.*7 needed"):
        await owner_store(mesh.peers[0]).put(pack_id_of(data), data)


def make_liar(sim_peer: SimPeer, store: MemoryShareStore, pack_id: bytes) -> None:
    """This peer now serves its share with one byte flipped, as a lying peer would."""

    async def lie(remote: Remote, message: Message) -> Message:
        stored = store.get(pack_id, store.indices(pack_id)[0])
        assert stored is not None
        tampered = bytes([stored.data[0] ^ 1]) + stored.data[1:]
        return ShareData(stored.index, stored.descriptor, tampered)

    sim_peer.peer.add_handler(GetShare, lie)


@pytest.mark.parametrize(("crashed", "rebuilds"), [(5, True), (6, False)])
async def test_bad_shares_are_skipped_and_k_good_ones_rebuild(
    crashed: int,
    rebuilds: bool,
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
) -> None:
    mesh = await build_mesh(nursery, 40, seed=8)
    stores = equip(mesh)
    owner = mesh.peers[0]
    data = os.urandom(200_000)
    pack_id = pack_id_of(data)
    await owner_store(owner).put(pack_id, data)
    by_id = {p.node_id: p for p in mesh.peers}
    ordered = list(holders(stores, pack_id))
    for nid in ordered[:crashed]:
        mesh.crash(by_id[nid])
    for nid in ordered[crashed : crashed + 2]:
        make_liar(by_id[nid], stores[nid], pack_id)
    # 10 shares - crashed - 2 liars = 3 good shares (rebuilds) or 2 (does not).
    if rebuilds:
        assert await owner_store(owner).get(pack_id) == data
    else:
        with pytest.raises(PackUnavailable, match=r"2 of the 3 shares needed"):
            await owner_store(owner).get(pack_id)


async def test_three_dead_holders_out_of_ten_do_not_matter(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 40, seed=9)
    stores = equip(mesh)
    owner = mesh.peers[0]
    data = os.urandom(200_000)
    pack_id = pack_id_of(data)
    await owner_store(owner).put(pack_id, data)
    by_id = {p.node_id: p for p in mesh.peers}
    for nid in list(holders(stores, pack_id))[:7]:
        mesh.crash(by_id[nid])
    assert await owner_store(owner).get(pack_id) == data
