"""Requests siblings of a share set send each other."""

from __future__ import annotations

from typing import Annotated

from p2pbackup.codec.descriptor import MAX_LEASE_EXPIRY
from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.shares.messages import (
    AuditBlock,
    BlockBytes,
    Descriptor,
    MaybeBlock,
    MaybeBlockBytes,
    MaybePath,
    MerklePath,
    OwnerKey,
    PackId,
    ShareIndex,
)
from p2pbackup.wire.messages import Message, MessageType, message
from p2pbackup.wire.schema import bytes_field, int_field


@message(MessageType.QUERY_SHARE)
class QueryShare(Message):
    """Which share of `owner`'s pack do you hold, under which descriptor? (no data)

    With `block`, a sibling's audit rides along: prove that block of the share
    held in the reply (decision 0066), saving a second exchange."""

    pack_id: PackId
    owner: OwnerKey
    block: MaybeBlock = None


@message(MessageType.SHARE_HELD)
class ShareHeld(Message):
    """Reply to QueryShare; for a query that asked for a proof, the block asked for and
    its Merkle path (both absent when the holder cannot prove it)."""

    index: ShareIndex
    descriptor: Descriptor
    block: MaybeBlockBytes = None
    proof: MaybePath = None

    def audit_proof(self) -> AuditProof | None:
        """The proof that came along, as an audit's answer; None when none did."""
        if self.block is None or self.proof is None:
            return None
        return AuditProof(self.block, self.proof)


@message(MessageType.AUDIT)
class Audit(Message):
    """Prove you still hold share `index` of `owner`'s pack: send block `block` and its path."""

    pack_id: PackId
    owner: OwnerKey
    index: ShareIndex
    block: AuditBlock


@message(MessageType.AUDIT_PROOF)
class AuditProof(Message):
    data: BlockBytes
    proof: MerklePath


@message(MessageType.RENEW_LEASE)
class RenewLease(Message):
    """The owner's newer descriptor for a pack whose share you hold: keep it longer.

    The owner is the one the descriptor names and signs, so it needs no field of its own."""

    pack_id: PackId
    descriptor: Descriptor


@message(MessageType.LEASE_RENEWED)
class LeaseRenewed(Message):
    # the lease now held, which may be later than the one sent
    lease_expiry: Annotated[int, int_field(0, MAX_LEASE_EXPIRY)]


@message(MessageType.RELEASE_SHARE)
class ReleaseShare(Message):
    """The owner no longer needs this pack: drop your share of it now."""

    pack_id: PackId
    owner: Annotated[bytes, bytes_field(exact=PUBLIC_KEY_BYTES)]
    signature: Annotated[bytes, bytes_field(exact=SIGNATURE_BYTES)]


@message(MessageType.SHARE_RELEASED)
class ShareReleased(Message):
    count: Annotated[int, int_field(0, 255)]


MAINTENANCE_REQUESTS: tuple[type[Message], ...] = (QueryShare, Audit, RenewLease, ReleaseShare)
