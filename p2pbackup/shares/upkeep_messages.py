"""Requests siblings of a share set send each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from p2pbackup.codec.descriptor import MAX_LEASE_EXPIRY
from p2pbackup.codec.erasure import BLOCK_SIZE, HASH_BYTES
from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.shares.messages import Descriptor, PackId, ShareIndex
from p2pbackup.wire.messages import Message, MessageType, register
from p2pbackup.wire.schema import WireField, bytes_field, int_field

MAX_PROOF = 64  # hashes: a tree over 2**64 blocks

MerklePath = Annotated[tuple[bytes, ...], WireField(bytes_field(exact=HASH_BYTES)).many(MAX_PROOF)]


@register
@dataclass(frozen=True)
class QueryShare(Message):
    """Which share of this pack do you hold, under which descriptor? (no data)"""

    TYPE = MessageType.QUERY_SHARE

    pack_id: PackId


@register
@dataclass(frozen=True)
class ShareHeld(Message):
    TYPE = MessageType.SHARE_HELD

    index: ShareIndex
    descriptor: Descriptor


@register
@dataclass(frozen=True)
class Audit(Message):
    """Prove you still hold share `index` of this pack: send block `block` and its path."""

    TYPE = MessageType.AUDIT

    pack_id: PackId
    index: ShareIndex
    block: Annotated[int, int_field(0, 2**40)]


@register
@dataclass(frozen=True)
class AuditProof(Message):
    TYPE = MessageType.AUDIT_PROOF

    data: Annotated[bytes, bytes_field(max_len=BLOCK_SIZE)]
    proof: MerklePath


@register
@dataclass(frozen=True)
class RenewLease(Message):
    """The owner's newer descriptor for a pack whose share you hold: keep it longer."""

    TYPE = MessageType.RENEW_LEASE

    pack_id: PackId
    descriptor: Descriptor


@register
@dataclass(frozen=True)
class LeaseRenewed(Message):
    TYPE = MessageType.LEASE_RENEWED

    # the lease now held, which may be later than the one sent
    lease_expiry: Annotated[int, int_field(0, MAX_LEASE_EXPIRY)]


@register
@dataclass(frozen=True)
class ReleaseShare(Message):
    """The owner no longer needs this pack: drop your share of it now."""

    TYPE = MessageType.RELEASE_SHARE

    pack_id: PackId
    owner: Annotated[bytes, bytes_field(exact=PUBLIC_KEY_BYTES)]
    signature: Annotated[bytes, bytes_field(exact=SIGNATURE_BYTES)]


@register
@dataclass(frozen=True)
class ShareReleased(Message):
    TYPE = MessageType.SHARE_RELEASED

    count: Annotated[int, int_field(0, 255)]


MAINTENANCE_REQUESTS: tuple[type[Message], ...] = (QueryShare, Audit, RenewLease, ReleaseShare)
