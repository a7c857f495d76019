"""What a holder accepts about a lease: only a later expiry the owner signed, or a genuine release.

A replayed old descriptor cannot cut a lease short, and only the owner's
signature over a pack id ends a lease early. These rules are shared by the
holder, which applies them to what it is sent, and by the maintainer, which
adopts a sibling's newer lease during its surveys.

A holder also keeps nothing longer than it chose to: whatever an owner signs,
the lease it keeps ends at most `max_lease` seconds from now, so a stranger
cannot fill its disk with shares that never expire.
"""

from __future__ import annotations

from p2pbackup.codec.descriptor import ShareDescriptor, same_share_set
from p2pbackup.crypto.identity import Identity, verify_signature
from p2pbackup.errors import WireError
from p2pbackup.shares.upkeep_messages import ReleaseShare

_RELEASE_CONTEXT = b"p2pbackup-release-v1\x00"
# The longest lease a holder keeps by default: well past an owner's 90-day lease
# and its weekly renewals, far short of a squatter's forever.
MAX_LEASE_SECONDS = 400 * 86_400


def release_payload(pack_id: bytes) -> bytes:
    return _RELEASE_CONTEXT + pack_id


def release_for(identity: Identity, pack_id: bytes) -> ReleaseShare:
    return ReleaseShare(pack_id, identity.public_key, identity.sign(release_payload(pack_id)))


def release_is_genuine(message: ReleaseShare) -> bool:
    return verify_signature(message.owner, release_payload(message.pack_id), message.signature)


def newer_lease(held: ShareDescriptor, offered_bytes: bytes) -> ShareDescriptor | None:
    """The offered descriptor if it is the owner's, for the same shares, with a later lease."""
    try:
        offered = ShareDescriptor.from_bytes(offered_bytes)
    except WireError:
        return None
    if offered.lease_expiry <= held.lease_expiry or not same_share_set(held, offered):
        return None
    return offered if offered.verify() else None


def capped_lease(lease_expiry: int, now: float, max_lease: int) -> int:
    """The lease this holder keeps: the signed one, but never past now plus its maximum."""
    return min(lease_expiry, int(now) + max_lease)
