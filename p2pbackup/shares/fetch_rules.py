"""Who a holder hands a share to: the pack's owner and the pack's other holders.

A share served to anyone who asks lets a stranger collect a pack's shares and
then claim to hold them. The owner's own peer holds none of its shares and
its node id is not derived from the owner key, so the owner signs its request:
the owner key over the pack id and the caller's node id, which the transport
has authenticated, so no other identity can replay the proof. Another holder
(a keeper repairing the set) has no such key; it is challenged instead, as
holders audit each other: it names the share it holds and proves a random
block of it against the root the owner signed. Anyone else gets NoShare.
"""

from __future__ import annotations

import random

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.erasure import block_count, verify_block
from p2pbackup.crypto.identity import Identity, verify_signature
from p2pbackup.dht.node import DhtNode
from p2pbackup.net.transport import Remote
from p2pbackup.shares.messages import GetShare
from p2pbackup.shares.upkeep_messages import Audit, AuditProof, QueryShare, ShareHeld

_FETCH_CONTEXT = b"p2pbackup-fetch-v1\x00"


def fetch_payload(pack_id: bytes, caller: bytes) -> bytes:
    return _FETCH_CONTEXT + pack_id + caller


def owner_fetch(owner: Identity, pack_id: bytes, caller: bytes) -> GetShare:
    """The owner's request for its pack's share, made from the peer with node id `caller`."""
    return GetShare(pack_id, owner.public_key, owner.sign(fetch_payload(pack_id, caller)))


def fetch_is_owners(descriptor: ShareDescriptor, message: GetShare, caller: bytes) -> bool:
    """True when the request carries the descriptor's owner's signature for this caller."""
    if message.owner_proof is None or message.owner != descriptor.owner:
        return False
    payload = fetch_payload(message.pack_id, caller)
    return verify_signature(descriptor.owner, payload, message.owner_proof)


class SiblingCheck:
    """Challenges a caller to prove it holds another share of the same pack."""

    def __init__(self, dht: DhtNode, rng: random.Random) -> None:
        self.dht = dht
        self.rng = rng

    async def holds_sibling(
        self, remote: Remote, descriptor: ShareDescriptor, my_index: int
    ) -> bool:
        """True once the caller proved a random block of a share of the pack other than ours,
        held for the same owner: another owner's share under this pack id proves nothing."""
        contact = remote.contact()
        if contact is None:
            return False
        held = await self.dht.call(contact, QueryShare(descriptor.pack_id, descriptor.owner))
        if not isinstance(held, ShareHeld) or held.index == my_index:
            return False
        if not 0 <= held.index < descriptor.n:
            return False
        blocks = block_count(descriptor.share_size)
        block = self.rng.randrange(blocks)
        challenge = Audit(descriptor.pack_id, descriptor.owner, held.index, block)
        proof = await self.dht.call(contact, challenge)
        if not isinstance(proof, AuditProof):
            return False
        root = descriptor.roots[held.index]
        return verify_block(root, block, proof.data, list(proof.proof), blocks, descriptor.version)
