"""Leases on a simulated mesh: renewal keeps shares, expiry and release free the space."""

from __future__ import annotations

import random

import trio

from p2pbackup.base.offload import inline
from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.config import DhtConfig
from p2pbackup.maintenance.config import MaintenanceConfig
from p2pbackup.maintenance.leases import release_pack, renew_pack
from p2pbackup.net.contact import Contact
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy
from p2pbackup.shares.upkeep_messages import RenewLease
from p2pbackup.simulations.mesh import SimMesh
from p2pbackup.simulations.storage import StorageMesh, virtual_now

DAY = 86_400
HOUR = 3_600
LEASE = 12 * HOUR
KEYS = OwnerKeys.from_master(bytes(range(1, 33)))
CONFIG = MaintenanceConfig(
    audit_interval=2 * HOUR, request_timeout=5.0, share_timeout=10.0, light_rounds=2
)
QUIET_DHT = DhtConfig(rpc_timeout=2.0, refresh_interval=6 * HOUR, republish_interval=6 * HOUR)


async def placed(nursery: trio.Nursery, seed: int, packs: int) -> tuple[StorageMesh, list[bytes]]:
    """20 peers with storage and maintenance; the first places `packs` packs, 12 h leases."""
    mesh = await SimMesh.create(nursery, seed, dht=QUIET_DHT)
    await mesh.grow(20)
    storage = StorageMesh(mesh, CONFIG)
    owner = mesh.peers[0]  # holds none of its own shares, as on a real peer
    for sim_peer in mesh.peers[1:]:
        storage.equip(sim_peer)
    store = MeshPackStore(
        owner.peer.dht,
        KEYS.identity,
        Redundancy(lease_seconds=LEASE),
        share_timeout=10.0,
        run_sync=inline,
        now=virtual_now,
    )
    pack_ids = []
    data_rng = random.Random(seed)
    for _ in range(packs):
        data = data_rng.randbytes(40_000)
        pack_ids.append(pack_id_of(data))
        await store.put(pack_ids[-1], data)
    for sim_peer in mesh.peers[1:]:
        storage.maintain(sim_peer)
    return storage, pack_ids


def shares_of(storage: StorageMesh, pack_id: bytes) -> int:
    return sum(len(store.indices(pack_id)) for store in storage.live_stores())


async def test_unrenewed_leases_run_out_and_free_the_space(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 31, 3)
    assert all(shares_of(storage, p) == 10 for p in packs)
    assert storage.held_bytes() > 0
    await trio.sleep(LEASE + 3 * CONFIG.audit_interval)
    assert storage.held_bytes() == 0
    assert sum(m.stats.expired for m in storage.maintainers.values()) == 30
    storage.mesh.stop()


async def test_renewal_keeps_shares_and_reaches_holders_the_owner_missed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 32, 2)
    owner = storage.mesh.peers[0]
    await trio.sleep(LEASE / 2)
    later = int(virtual_now()) + 30 * DAY
    assert await renew_pack(owner.peer.dht, KEYS.identity, packs[0], later, 5.0) == 10
    # For the second pack, the owner reaches one holder only; siblings catch up by survey.
    holder = next(p for p in storage.mesh.peers[1:] if storage.stores[p.node_id].indices(packs[1]))
    stored = storage.stores[holder.node_id]
    descriptor = stored.get(packs[1], stored.indices(packs[1])[0])
    assert descriptor is not None
    renewed = ShareDescriptor.from_bytes(descriptor.descriptor).renewed(KEYS.identity, later)
    contact = Contact(holder.node_id, *holder.address)
    await owner.peer.dht.transport.request(contact, RenewLease(packs[1], renewed.to_bytes()), 5.0)
    await trio.sleep(LEASE)  # past the first lease
    assert shares_of(storage, packs[0]) == 10
    assert shares_of(storage, packs[1]) == 10
    assert sum(m.stats.leases_adopted for m in storage.maintainers.values()) >= 9
    # An old descriptor replayed cannot cut the lease back.
    old = ShareDescriptor.from_bytes(descriptor.descriptor).to_bytes()
    await owner.peer.dht.transport.request(contact, RenewLease(packs[1], old), 5.0)
    kept = stored.get(packs[1], stored.indices(packs[1])[0])
    assert kept is not None and kept.lease_expiry == later
    storage.mesh.stop()


async def test_a_released_pack_is_dropped_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 33, 2)
    owner = storage.mesh.peers[0]
    assert await release_pack(owner.peer.dht, KEYS.identity, packs[0], 5.0) == 10
    assert shares_of(storage, packs[0]) == 0 and shares_of(storage, packs[1]) == 10
    # Nobody but the owner can release: a release signed by another key is refused.
    stranger = OwnerKeys.from_master(bytes(32))
    assert await release_pack(owner.peer.dht, stranger.identity, packs[1], 5.0) == 0
    assert shares_of(storage, packs[1]) == 10
    storage.mesh.stop()
