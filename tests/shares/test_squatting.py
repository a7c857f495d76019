"""A squatter's share under another owner's pack id, on one holder: it blocks nothing
and answers for nothing. Each request about a held share names its owner."""

from __future__ import annotations

import pytest

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.erasure import block_count, verify_block
from p2pbackup.crypto.identity import Identity
from p2pbackup.shares.fetch_rules import owner_fetch
from p2pbackup.shares.holder import ShareRefused
from p2pbackup.shares.lease_rules import release_for
from p2pbackup.shares.messages import PutShare, ShareData, ShareStored
from p2pbackup.shares.upkeep_messages import (
    Audit,
    AuditProof,
    QueryShare,
    ReleaseShare,
    ShareHeld,
    ShareReleased,
)
from p2pbackup.simulations.hostile import junk_shares
from tests.shares.test_holder import CALLER, NOW, OWNER, holder, pack

SQUATTER = Identity.generate()


@pytest.mark.parametrize("squatted_index", [4, 7])
async def test_the_owners_share_is_placed_beside_a_squatters_and_answered_apart(
    squatted_index: int,
) -> None:
    """Old behaviour: the squat at the same index was refused as "held for another owner",
    one at another index as "already holds share 7 of this pack"."""
    h = holder()
    pack_id, shares, descriptor = pack()
    junk = junk_shares(SQUATTER, pack_id, 10, lease_expiry=NOW + 3600)[squatted_index]
    assert isinstance(await h.handle(CALLER, junk), ShareStored)
    put = PutShare(pack_id, 4, descriptor, shares[4])
    assert isinstance(await h.handle(CALLER, put), ShareStored)

    owner, squatter = OWNER.public_key, SQUATTER.public_key
    assert await h.handle(CALLER, QueryShare(pack_id, owner)) == ShareHeld(4, descriptor)
    theirs = await h.handle(CALLER, QueryShare(pack_id, squatter))
    assert theirs == ShareHeld(squatted_index, junk.descriptor)
    served = await h.handle(CALLER, owner_fetch(OWNER, pack_id, CALLER.node_id))
    assert served == ShareData(4, descriptor, shares[4])

    # An audit names the owner: proven against the owner's root, not the squatter's.
    signed = ShareDescriptor.from_bytes(descriptor)
    blocks = block_count(signed.share_size)
    proof = await h.handle(CALLER, Audit(pack_id, owner, 4, blocks - 1))
    assert isinstance(proof, AuditProof)
    assert verify_block(signed.roots[4], blocks - 1, proof.data, list(proof.proof), blocks)

    # Each owner's release drops its own share only.
    assert await h.handle(CALLER, release_for(SQUATTER, pack_id)) == ShareReleased(1)
    assert await h.handle(CALLER, QueryShare(pack_id, owner)) == ShareHeld(4, descriptor)


async def test_one_owner_still_gets_one_share_of_a_pack_per_holder() -> None:
    h = holder()
    pack_id, shares, descriptor = pack()
    await h.handle(CALLER, PutShare(pack_id, 1, descriptor, shares[1]))
    with pytest.raises(ShareRefused, match="already holds share 1"):
        await h.handle(CALLER, PutShare(pack_id, 2, descriptor, shares[2]))


async def test_a_forged_release_naming_the_owner_drops_nothing() -> None:
    h = holder()
    pack_id, shares, descriptor = pack()
    await h.handle(CALLER, PutShare(pack_id, 1, descriptor, shares[1]))
    forged = ReleaseShare(pack_id, OWNER.public_key, release_for(SQUATTER, pack_id).signature)
    with pytest.raises(ShareRefused, match="not signed"):
        await h.handle(CALLER, forged)
    assert isinstance(await h.handle(CALLER, QueryShare(pack_id, OWNER.public_key)), ShareHeld)
