"""Placing and fetching pack shares on a simulated mesh of real peers."""

from __future__ import annotations

import pytest
import trio

from p2pbackup.codec.packstore import PackUnavailable
from p2pbackup.net.transport import Remote
from p2pbackup.shares.mesh_packs import PlacementFailed
from p2pbackup.shares.messages import GetShare, ShareData
from p2pbackup.simulations.mesh import SimPeer
from p2pbackup.store import MemoryShareStore
from p2pbackup.wire.messages import Message
from tests.sim.helpers import (
    KEYS,
    by_distance,
    by_id,
    equipped_mesh,
    hold,
    holders,
    new_pack,
    owner_store,
    place_pack,
)


async def test_share_i_goes_to_the_ith_closest_peer_and_never_two_on_one(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 40, seed=5)
    owner = mesh.peers[0]
    data, pack_id = new_pack(mesh, 300_000)
    receipt = await owner_store(owner).put(pack_id, data)
    assert (receipt.k, receipt.n, receipt.placed) == (3, 10, 10)
    held = holders(stores, pack_id)
    assert owner.node_id not in held  # the owner's own peer holds none of its shares
    assert all(len(indices) == 1 for indices in held.values())
    others = by_distance(mesh, pack_id)
    assert [held[p.node_id][0] for p in others[:10]] == list(range(10))
    assert await owner_store(mesh.peers[7]).get(pack_id) == data


async def test_a_full_peer_refuses_and_the_next_closest_takes_its_share(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 30, seed=6)
    owner = mesh.peers[0]
    data, pack_id = new_pack(mesh, 120_000)
    others = by_distance(mesh, pack_id)
    full = others[0]
    stores[full.node_id] = tiny = MemoryShareStore(10)
    hold(full, tiny)
    receipt = await owner_store(owner).put(pack_id, data)
    assert receipt.placed == 10
    held = holders(stores, pack_id)
    assert full.node_id not in held
    assert held[others[10].node_id] == [0]  # share 0 moved to the 11th closest


async def test_too_few_peers_stops_with_how_many_were_found(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, _ = await equipped_mesh(nursery, 6, seed=7)
    # Five others can hold shares: the message says so, and which redundancy fits them.
    with pytest.raises(PlacementFailed) as failed:
        await place_pack(mesh, 50_000)
    message = str(failed.value)
    assert "only 5 peers can hold shares (7 needed for 3-of-10, happy 7" in message
    assert message.endswith("run `p2pbackup config set redundancy 3-of-5`")
    assert "\n" not in message


def make_liar(sim_peer: SimPeer, store: MemoryShareStore, pack_id: bytes) -> None:
    """This peer now serves its share with one byte flipped, as a lying peer would."""

    async def lie(remote: Remote, message: Message) -> Message:
        stored = store.get(pack_id, store.indices(pack_id)[0], KEYS.identity.public_key)
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
    mesh, stores = await equipped_mesh(nursery, 40, seed=8)
    owner = mesh.peers[0]
    data, pack_id = await place_pack(mesh, 200_000)
    peers = by_id(mesh)
    ordered = list(holders(stores, pack_id))
    for nid in ordered[:crashed]:
        mesh.crash(peers[nid])
    for nid in ordered[crashed : crashed + 2]:
        make_liar(peers[nid], stores[nid], pack_id)
    # 10 shares - crashed - 2 liars = 3 good shares (rebuilds) or 2 (does not).
    if rebuilds:
        assert await owner_store(owner).get(pack_id) == data
    else:
        with pytest.raises(PackUnavailable, match=r"2 of the 3 shares needed"):
            await owner_store(owner).get(pack_id)


async def test_a_pack_with_no_share_left_says_so_not_how_many_it_needed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 20, seed=9)
    _, pack_id = await place_pack(mesh, 100_000)
    peers = by_id(mesh)
    for nid in holders(stores, pack_id):
        mesh.crash(peers[nid])
    # No descriptor came back to say its k: the setting's k was named instead.
    with pytest.raises(PackUnavailable, match=r": no share found from the \d+ peers asked"):
        await owner_store(mesh.peers[0]).get(pack_id)


async def test_three_dead_holders_out_of_ten_do_not_matter(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 40, seed=9)
    owner = mesh.peers[0]
    data, pack_id = await place_pack(mesh, 200_000)
    peers = by_id(mesh)
    for nid in list(holders(stores, pack_id))[:7]:
        mesh.crash(peers[nid])
    assert await owner_store(owner).get(pack_id) == data
