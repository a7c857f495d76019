"""Requests siblings of a share set send each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pbackup.codec.descriptor import MAX_DESCRIPTOR_BYTES, MAX_LEASE_EXPIRY
from p2pbackup.codec.erasure import BLOCK_SIZE, HASH_BYTES
from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.wire.messages import Message, MessageType, register
from p2pbackup.wire.schema import bytes_field, int_field, list_of

_PACK_ID = bytes_field(exact=20)
_INDEX = int_field(0, 254)
MAX_PROOF = 64  # hashes: a tree over 2**64 blocks


@register
@dataclass(frozen=True)
class QueryShare(Message):
    """Which share of this pack do you hold, under which descriptor? (no data)"""

    TYPE = MessageType.QUERY_SHARE
    FIELDS = {"pack_id": _PACK_ID}

    pack_id: bytes


@register
@dataclass(frozen=True)
class ShareHeld(Message):
    TYPE = MessageType.SHARE_HELD
    FIELDS = {"index": _INDEX, "descriptor": bytes_field(max_len=MAX_DESCRIPTOR_BYTES)}

    index: int
    descriptor: bytes


@register
@dataclass(frozen=True)
class Audit(Message):
    """Prove you still hold share `index` of this pack: send block `block` and its path."""

    TYPE = MessageType.AUDIT
    FIELDS = {"pack_id": _PACK_ID, "index": _INDEX, "block": int_field(0, 2**40)}

    pack_id: bytes
    index: int
    block: int


@register
@dataclass(frozen=True)
class AuditProof(Message):
    TYPE = MessageType.AUDIT_PROOF
    FIELDS = {
        "data": bytes_field(max_len=BLOCK_SIZE),
        "proof": list_of(bytes_field(exact=HASH_BYTES), MAX_PROOF),
    }

    data: bytes
    proof: tuple[bytes, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"data": self.data, "proof": list(self.proof)}

    @classmethod
    def from_wire(cls, checked: dict[str, Any]) -> AuditProof:
        return cls(checked["data"], tuple(checked["proof"]))


@register
@dataclass(frozen=True)
class RenewLease(Message):
    """The owner's newer descriptor for a pack whose share you hold: keep it longer."""

    TYPE = MessageType.RENEW_LEASE
    FIELDS = {"pack_id": _PACK_ID, "descriptor": bytes_field(max_len=MAX_DESCRIPTOR_BYTES)}

    pack_id: bytes
    descriptor: bytes


@register
@dataclass(frozen=True)
class LeaseRenewed(Message):
    TYPE = MessageType.LEASE_RENEWED
    FIELDS = {"lease_expiry": int_field(0, MAX_LEASE_EXPIRY)}

    lease_expiry: int  # the lease now held, which may be later than the one sent


@register
@dataclass(frozen=True)
class ReleaseShare(Message):
    """The owner no longer needs this pack: drop your share of it now."""

    TYPE = MessageType.RELEASE_SHARE
    FIELDS = {
        "pack_id": _PACK_ID,
        "owner": bytes_field(exact=PUBLIC_KEY_BYTES),
        "signature": bytes_field(exact=SIGNATURE_BYTES),
    }

    pack_id: bytes
    owner: bytes
    signature: bytes


@register
@dataclass(frozen=True)
class ShareReleased(Message):
    TYPE = MessageType.SHARE_RELEASED
    FIELDS = {"count": int_field(0, 255)}

    count: int


MAINTENANCE_REQUESTS: tuple[type[Message], ...] = (QueryShare, Audit, RenewLease, ReleaseShare)
