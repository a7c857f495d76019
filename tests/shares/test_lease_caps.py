"""A holder keeps a share no longer than its own maximum lease, whatever the owner signed."""

from __future__ import annotations

from p2pbackup.base.offload import inline
from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.crypto.identity import Identity
from p2pbackup.shares.holder import ShareHolder
from p2pbackup.shares.lease_rules import MAX_LEASE_SECONDS
from p2pbackup.shares.messages import PutShare
from p2pbackup.shares.upkeep_messages import LeaseRenewed, RenewLease
from p2pbackup.store import MemoryShareStore
from tests.shares.test_holder import CALLER, NOW, OWNER, pack

FOREVER = 2**40  # a squatter's lease: junk that would never expire


def holder(max_lease: int = MAX_LEASE_SECONDS) -> ShareHolder:
    return ShareHolder(
        MemoryShareStore(2**30), run_sync=inline, now=lambda: NOW, max_lease=max_lease
    )


async def test_a_junk_share_with_a_2_pow_40_second_lease_is_capped() -> None:
    h = holder()
    squatter = Identity.generate()
    pack_id, shares, descriptor = pack(lease=FOREVER, owner=squatter)
    await h.handle(CALLER, PutShare(pack_id, 0, descriptor, shares[0]))
    stored = h.store.get(pack_id, 0, squatter.public_key)
    assert stored is not None
    assert stored.lease_expiry == NOW + MAX_LEASE_SECONDS
    # It expires with the cap, not in 35,000 years.
    assert h.store.expired(NOW + MAX_LEASE_SECONDS) == [(pack_id, 0, squatter.public_key)]


async def test_a_lease_within_the_cap_is_kept_as_signed() -> None:
    h = holder()
    pack_id, shares, descriptor = pack(lease=NOW + 3600)
    await h.handle(CALLER, PutShare(pack_id, 3, descriptor, shares[3]))
    stored = h.store.get(pack_id, 3, OWNER.public_key)
    assert stored is not None and stored.lease_expiry == NOW + 3600


async def test_a_renewal_to_2_pow_40_seconds_is_capped_too() -> None:
    h = holder(max_lease=86_400)
    owner = Identity.generate()
    pack_id, shares, descriptor = pack(lease=NOW + 3600, owner=owner)
    await h.handle(CALLER, PutShare(pack_id, 1, descriptor, shares[1]))
    renewed = ShareDescriptor.from_bytes(descriptor).renewed(owner, FOREVER).to_bytes()
    reply = await h.handle(CALLER, RenewLease(pack_id, renewed))
    assert reply == LeaseRenewed(NOW + 86_400)
    stored = h.store.get(pack_id, 1, owner.public_key)
    assert stored is not None and stored.lease_expiry == NOW + 86_400
    # The same renewal again changes nothing and says what is kept.
    assert await h.handle(CALLER, RenewLease(pack_id, renewed)) == LeaseRenewed(NOW + 86_400)
