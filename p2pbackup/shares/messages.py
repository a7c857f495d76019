"""Requests that move shares between an owner and storage peers."""

from __future__ import annotations

from typing import Annotated

from p2pbackup.base.ids import PACK_ID_BYTES
from p2pbackup.codec.descriptor import MAX_DESCRIPTOR_BYTES
from p2pbackup.codec.erasure import BLOCK_SIZE, HASH_BYTES
from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.wire.messages import Message, MessageType, message
from p2pbackup.wire.schema import WireField, bytes_field, int_field

# A pack is about 4 MiB and at most one 4 MiB chunk plus overhead; a share is
# a k-th of that. The limit leaves room for k=1 while staying under the frame.
MAX_SHARE_BYTES = 6 * 1024 * 1024

PackId = Annotated[bytes, bytes_field(exact=PACK_ID_BYTES)]
ShareIndex = Annotated[int, int_field(0, 254)]
Descriptor = Annotated[bytes, bytes_field(max_len=MAX_DESCRIPTOR_BYTES)]
ShareBytes = Annotated[bytes, bytes_field(max_len=MAX_SHARE_BYTES)]
# A share arriving to be held: a read-only view of the frame it came in, written to
# disk from there, not copied out of it first (decision 0076).
IncomingShare = Annotated[bytes | memoryview, bytes_field(max_len=MAX_SHARE_BYTES, view=True)]
# The pack's owner key: a holder keeps shares by owner and pack id, so a request about
# a held share names whose share it means (another owner may use the same pack id).
OwnerKey = Annotated[bytes, bytes_field(exact=PUBLIC_KEY_BYTES)]
# An audit names one block of a share; the answer is its bytes and its Merkle path.
_BLOCK = int_field(0, 2**40)
_BLOCK_BYTES = bytes_field(max_len=BLOCK_SIZE)
MAX_PROOF = 64  # hashes: a tree over 2**64 blocks
_PATH = WireField(bytes_field(exact=HASH_BYTES)).many(MAX_PROOF)
AuditBlock = Annotated[int, _BLOCK]
BlockBytes = Annotated[bytes, _BLOCK_BYTES]
MerklePath = Annotated[tuple[bytes, ...], _PATH]
# The same, where a request may ask for a proof and its answer carries one only then.
MaybeBlock = Annotated[int | None, _BLOCK]
MaybeBlockBytes = Annotated[bytes | None, _BLOCK_BYTES]
MaybePath = Annotated[tuple[bytes, ...] | None, _PATH.or_none()]


@message(MessageType.PUT_SHARE)
class PutShare(Message):
    """Hold share `index` of a pack; the descriptor is signed by the pack's owner.

    With `prove_block`, the owner's audit rides along: once the share is durable,
    prove that block of it in the reply (decision 0057), saving a second exchange."""

    pack_id: PackId
    index: ShareIndex
    descriptor: Descriptor
    data: IncomingShare
    prove_block: Annotated[int | None, _BLOCK] = None


@message(MessageType.SHARE_STORED)
class ShareStored(Message):
    """Reply to PutShare: the share is held; for a put that asked for a proof, the
    block asked for and its Merkle path (else both absent)."""

    block: Annotated[bytes | None, _BLOCK_BYTES] = None
    proof: Annotated[tuple[bytes, ...] | None, _PATH.or_none()] = None


@message(MessageType.GET_SHARE)
class GetShare(Message):
    """Send whichever share of `owner`'s pack you hold (a peer never holds two).

    Only the pack's owner and its other holders are answered: the owner signs
    `owner_proof` (see `fetch_rules`), a holder is challenged to prove its share."""

    pack_id: PackId
    owner: OwnerKey
    owner_proof: Annotated[bytes | None, bytes_field(exact=SIGNATURE_BYTES)] = None


@message(MessageType.SHARE)
class ShareData(Message):
    index: ShareIndex
    descriptor: Descriptor
    data: ShareBytes


@message(MessageType.NO_SHARE)
class NoShare(Message):
    """Reply to GetShare: this peer holds no share of that pack."""


SHARE_REQUESTS: tuple[type[Message], ...] = (PutShare, GetShare)
