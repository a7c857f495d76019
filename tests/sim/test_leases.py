"""Leases on a simulated mesh: renewal keeps shares, expiry and release free the space."""

from __future__ import annotations

import trio

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.maintenance.leases import release_pack, renew_pack
from p2pbackup.net.contact import Contact
from p2pbackup.shares.upkeep_messages import RenewLease
from p2pbackup.simulations.storage import StorageMesh, virtual_now
from tests.sim.helpers import LEASE, LEASE_KEYS, STORAGE_CONFIG, placed

DAY = 86_400


def shares_of(storage: StorageMesh, pack_id: bytes) -> int:
    return sum(len(store.indices(pack_id)) for store in storage.live_stores())


async def test_unrenewed_leases_run_out_and_free_the_space(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 31, 3)
    assert all(shares_of(storage, p) == 10 for p in packs)
    assert storage.held_bytes() > 0
    await trio.sleep(LEASE + 3 * STORAGE_CONFIG.audit_interval)
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
    assert await renew_pack(owner.peer.dht, LEASE_KEYS.identity, packs[0], later, 5.0) == 10
    # For the second pack, the owner reaches one holder only; siblings catch up by survey.
    holder = next(p for p in storage.mesh.peers[1:] if storage.stores[p.node_id].indices(packs[1]))
    stored = storage.stores[holder.node_id]
    owner_key = LEASE_KEYS.identity.public_key
    descriptor = stored.get(packs[1], stored.indices(packs[1])[0], owner_key)
    assert descriptor is not None
    renewed = ShareDescriptor.from_bytes(descriptor.descriptor).renewed(LEASE_KEYS.identity, later)
    contact = Contact(holder.node_id, *holder.address)
    await owner.peer.dht.transport.request(contact, RenewLease(packs[1], renewed.to_bytes()), 5.0)
    await trio.sleep(LEASE)  # past the first lease
    assert shares_of(storage, packs[0]) == 10
    assert shares_of(storage, packs[1]) == 10
    assert sum(m.stats.leases_adopted for m in storage.maintainers.values()) >= 9
    # An old descriptor replayed cannot cut the lease back.
    old = ShareDescriptor.from_bytes(descriptor.descriptor).to_bytes()
    await owner.peer.dht.transport.request(contact, RenewLease(packs[1], old), 5.0)
    kept = stored.get(packs[1], stored.indices(packs[1])[0], owner_key)
    assert kept is not None and kept.lease_expiry == later
    storage.mesh.stop()


async def test_a_released_pack_is_dropped_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 33, 2)
    owner = storage.mesh.peers[0]
    assert await release_pack(owner.peer.dht, LEASE_KEYS.identity, packs[0], 5.0) == 10
    assert shares_of(storage, packs[0]) == 0 and shares_of(storage, packs[1]) == 10
    # Nobody but the owner can release: a release signed by another key is refused.
    stranger = OwnerKeys.from_master(bytes(32))
    assert await release_pack(owner.peer.dht, stranger.identity, packs[1], 5.0) == 0
    assert shares_of(storage, packs[1]) == 10
    storage.mesh.stop()


async def test_a_sibling_adopts_a_huge_lease_only_up_to_its_own_maximum(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 33, 1)
    owner = storage.mesh.peers[0]
    holders = [p for p in storage.mesh.peers[1:] if storage.stores[p.node_id].indices(packs[0])]
    stored = storage.stores[holders[0].node_id]
    held = stored.get(packs[0], stored.indices(packs[0])[0], LEASE_KEYS.identity.public_key)
    assert held is not None
    # The owner's key signs a lease of 2^40 s; one holder is sent it, the rest learn
    # of it from that holder during their surveys.
    huge = ShareDescriptor.from_bytes(held.descriptor).renewed(LEASE_KEYS.identity, 2**40)
    contact = Contact(holders[0].node_id, *holders[0].address)
    await owner.peer.dht.transport.request(contact, RenewLease(packs[0], huge.to_bytes()), 5.0)
    for _ in range(20):  # surveys spread the lease within a few rounds
        if sum(m.stats.leases_adopted for m in storage.maintainers.values()) >= 9:
            break
        await trio.sleep(STORAGE_CONFIG.audit_interval)
    assert sum(m.stats.leases_adopted for m in storage.maintainers.values()) >= 9
    ceiling = int(virtual_now()) + STORAGE_CONFIG.max_lease
    leases = [
        info.lease_expiry
        for store in storage.live_stores()
        for info in store.list_shares()
        if info.pack_id == packs[0]
    ]
    assert len(leases) == 10 and all(lease <= ceiling for lease in leases)
    storage.mesh.stop()
