"""`repair --reencode` on a simulated mesh: a pack moved to other k/n keeps its id and bytes.

The owner reads the pack back, encodes it again, places and proves the new set,
then releases what is left of the old one; and a pack caught half way (some
holders on each encoding) is still read back from whichever encoding has k.
"""

from __future__ import annotations

import random
import time

import trio

from p2pbackup.base.offload import inline
from p2pbackup.codec.descriptor import ShareDescriptor, describe_pack
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.maintenance.repair import reencode_pack
from p2pbackup.shares.redundancy import Redundancy
from p2pbackup.store import MemoryShareStore
from tests.sim.helpers import KEYS, by_distance, equipped_mesh, holders, owner_store, place_pack


def _encodings(stores: dict[bytes, MemoryShareStore], pack_id: bytes) -> list[tuple[int, int]]:
    """The (k, n) of every share of the pack held anywhere."""
    found = []
    for store in stores.values():
        for index in store.indices(pack_id):
            held = store.get(pack_id, index, KEYS.identity.public_key)
            assert held is not None
            descriptor = ShareDescriptor.from_bytes(held.descriptor)
            found.append((descriptor.k, descriptor.n))
    return found


async def test_a_pack_encoded_again_keeps_its_id_and_leaves_no_old_share(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 14, seed=21)
    data, pack_id = await place_pack(mesh, 200_000)
    assert sorted(_encodings(stores, pack_id)) == [(3, 10)] * 10
    owner = owner_store(mesh.peers[0])
    target = Redundancy(2, 4, 3)
    again = await reencode_pack(
        owner.dht, owner, pack_id, KEYS.identity, target, random.Random(1), 5.0, inline, time.time
    )
    assert again is not None
    health, placed = again
    assert (health.live, health.k, health.n, placed) == (4, 2, 4, 4)
    assert sorted(_encodings(stores, pack_id)) == [(2, 4)] * 4  # the old set released
    assert await owner_store(mesh.peers[5]).get(pack_id) == data
    # Already at the target: nothing to do, a plain repair's business.
    assert (
        await reencode_pack(
            owner.dht,
            owner,
            pack_id,
            KEYS.identity,
            target,
            random.Random(2),
            5.0,
            inline,
            time.time,
        )
        is None
    )


async def test_a_pack_half_way_between_encodings_is_read_from_the_one_with_k(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 14, seed=22)
    data, pack_id = await place_pack(mesh, 120_000)
    owner_key = KEYS.identity.public_key
    # The old set lost all but two shares (fewer than its k of 3) while the two
    # closest peers took shares 0 and 1 of a 2-of-4 encoding.
    closest = by_distance(mesh, pack_id)
    for peer in closest[2:]:
        for index in stores[peer.node_id].indices(pack_id):
            stores[peer.node_id].delete(pack_id, index, owner_key)
    for peer in closest[2:4]:
        assert stores[peer.node_id].indices(pack_id) == []
    shares = encode_pack(data, 2, 4)
    lease = int(time.time()) + 86_400 * 365
    new = describe_pack(KEYS.identity, pack_id, shares, 2, len(data), lease).to_bytes()
    for index, peer in enumerate(closest[2:4]):
        stores[peer.node_id].put(pack_id, index, shares[index], new, owner_key, lease, 0)
    assert sorted(_encodings(stores, pack_id)) == [(2, 4), (2, 4), (3, 10), (3, 10)]
    assert len(holders(stores, pack_id)) == 4
    # Readers that hold none of its shares: a peer does not ask itself for one.
    readers = [peer for peer in mesh.peers if not stores[peer.node_id].indices(pack_id)]
    for reader in readers[:6]:
        assert await owner_store(reader).get(pack_id) == data
