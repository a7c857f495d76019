"""A peer proves it holds a share it says it took, before the share counts.

`ShareStored` is a claim anyone can make: a peer that keeps nothing answers
it as easily as one that keeps everything. A proof is not: the peer must send
a block the placer picked at random and names only once the share is there,
with its Merkle path up to the root the owner signed. Placing shares (owners, and repairers
that ask for it) uses this, so a share no peer can prove is not counted.

The challenge rides in the put itself (`PutShare.prove_block`) and the proof comes back
in `ShareStored` (decision 0057): the block is drawn before the share is sent, but the
holder answers only once the share is durable, so the proof still says "held", and a
reply without one counts as a failed audit.
"""

from __future__ import annotations

import random

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.erasure import block_count, verify_block
from p2pbackup.shares.messages import ShareStored
from p2pbackup.shares.upkeep_messages import Audit, AuditProof
from p2pbackup.wire.messages import Message


def challenge(descriptor: ShareDescriptor, index: int, rng: random.Random) -> Audit:
    """An audit of a random block of share `index`, drawn from `rng`."""
    block = rng.randrange(block_count(descriptor.share_size))
    return Audit(pack_id=descriptor.pack_id, owner=descriptor.owner, index=index, block=block)


def proves(descriptor: ShareDescriptor, audit: Audit, answer: Message | None) -> bool:
    """True when `answer` is the block `audit` asked for, proven against the signed root."""
    if not isinstance(answer, AuditProof) or not 0 <= audit.index < len(descriptor.roots):
        return False
    return verify_block(
        descriptor.roots[audit.index],
        audit.block,
        answer.data,
        list(answer.proof),
        block_count(descriptor.share_size),
        descriptor.version,
    )


def stored_proves(descriptor: ShareDescriptor, audit: Audit, reply: Message | None) -> bool:
    """True when `reply` is a `ShareStored` carrying the block `audit` asked for, proven
    against the signed root; one without a proof proves nothing."""
    if not isinstance(reply, ShareStored) or reply.block is None or reply.proof is None:
        return False
    return proves(descriptor, audit, AuditProof(reply.block, reply.proof))
