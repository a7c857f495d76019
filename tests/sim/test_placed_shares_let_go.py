"""An owner lets each share of a pack go as soon as its holder has it, so a pack
waiting on its slowest holder holds only the shares still on their way."""

from __future__ import annotations

import time

import trio

from p2pbackup.codec.descriptor import describe_pack
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.shares.placing import place_shares
from tests.sim.helpers import KEYS, equipped_mesh, holders, new_pack


async def _place(nursery: trio.Nursery, seed: int, drop: bool) -> tuple[dict[int, bytes], set[int]]:
    """Six shares offered to the five peers besides the owner: one finds no peer. The
    shares mapping after placing, and the indices placed."""
    mesh, stores = await equipped_mesh(nursery, 6, seed=seed)
    dht = mesh.peers[0].peer.dht
    data, pack_id = new_pack(mesh, 3_000)
    shares = encode_pack(data, 3, 6)
    lease = int(time.time()) + 3_600
    descriptor = describe_pack(KEYS.identity, pack_id, shares, 3, len(data), lease)
    by_index = dict(enumerate(shares))
    _, placed, _ = await place_shares(
        dht,
        pack_id,
        descriptor.to_bytes(),
        by_index,
        dht.table.closest(pack_id, 5),
        happy=4,
        timeout=5.0,
        drop_placed=drop,
    )
    assert sorted(i for held in holders(stores, pack_id).values() for i in held) == sorted(placed)
    return by_index, set(placed)


async def test_placed_shares_leave_the_mapping(nursery: trio.Nursery) -> None:
    left, placed = await _place(nursery, 69, drop=True)
    assert len(placed) == 5
    assert set(left) == set(range(6)) - placed


async def test_without_it_the_mapping_is_left_as_given(nursery: trio.Nursery) -> None:
    left, placed = await _place(nursery, 69, drop=False)
    assert len(placed) == 5
    assert set(left) == set(range(6))
