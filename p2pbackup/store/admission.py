"""Whether a share may come in: a malformed or foreign share is refused before any
store touches it, and one rule decides what a put does to what is already held, so
the dicts of the simulator and the files of a real peer admit exactly the same shares.

Everything here takes values and returns a decision or raises; nothing reads a disk.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import NamedTuple

import cbor2

from p2pbackup.base.ids import PACK_ID_BYTES
from p2pbackup.base.sizes import format_size
from p2pbackup.codec.erasure import (
    LATEST_TREE,
    TREES,
    block_count,
    block_proof,
    share_block,
    share_root,
    verify_block,
)
from p2pbackup.store.contract import (
    BlockProof,
    OwnerQuotaFull,
    ShareRejected,
    StoredShare,
    StoreFull,
)

OWNER_BYTES = 32
MAX_INDEX = 254
DIGEST_BYTES = 32
_INT64 = 2**63


def tree_of(descriptor: bytes) -> int:
    """The hash of the share trees a descriptor's roots were made with (its version).

    Holders check descriptors before a share gets here; bytes that do not parse (only a
    store's own tests put such) get the latest tree."""
    try:
        version = cbor2.loads(descriptor).get("v")
    except Exception:
        return LATEST_TREE
    return version if version in TREES else LATEST_TREE


def digest_of(data: bytes, tree: int = LATEST_TREE) -> bytes:
    """A share's Merkle root: what `get` checks before serving it."""
    return share_root(data, tree)


def flat_digest(data: bytes) -> bytes:
    """BLAKE2b-256 of the bytes: the digest of rows written before schema version 2."""
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


def matches(data: bytes, digest: bytes, merkle: int) -> bool:
    """Whether `data` is what was stored under `digest`: the root of share tree `merkle`,
    or, for 0, a flat digest."""
    return (digest_of(data, merkle) if merkle else flat_digest(data)) == digest


def proof_of(data: bytes, block: int, tree: int) -> BlockProof | None:
    """Block `block` of a share's bytes with its path in share tree `tree`; None when it
    has no such block."""
    if not 0 <= block < block_count(len(data)):
        return None
    return BlockProof(share_block(data, block), block_proof(data, block, tree))


def proven(data: bytes, digest: bytes, block: int, tree: int) -> BlockProof | None:
    """`proof_of`, only when the path leads up to `digest`: its siblings are the roots of
    every other part of the tree, so this checks the whole share against the Merkle root
    it was stored under with the one hash the proof costs anyway, not a second."""
    found = proof_of(data, block, tree)
    if found is None or not verify_block(
        digest, block, found.block, found.proof, block_count(len(data)), tree
    ):
        return None
    return found


def check_key(pack_id: bytes, index: int) -> None:
    """Refuse a key no share of ours could have: every call that names a share checks it."""
    if not isinstance(pack_id, bytes) or len(pack_id) != PACK_ID_BYTES:
        raise ShareRejected(f"pack id must be {PACK_ID_BYTES} bytes, got {_describe(pack_id)}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise ShareRejected(f"share index must be an integer 0..{MAX_INDEX}, got {index!r}")


def check_owner(owner: bytes) -> None:
    if not isinstance(owner, bytes) or len(owner) != OWNER_BYTES:
        raise ShareRejected(f"owner must be {OWNER_BYTES} bytes, got {_describe(owner)}")


def check_time(name: str, value: int) -> None:
    """Times are stored as SQLite integers, so one past 64 bits is refused, not truncated."""
    if isinstance(value, bool) or not isinstance(value, int) or not -_INT64 <= value < _INT64:
        raise ShareRejected(f"{name} must be a 64-bit integer, got {value!r}")


def check_put(share: StoredShare) -> None:
    """Refuse a share before anything is stored; `stored_at` is the caller's `now`."""
    check_key(share.pack_id, share.index)
    check_owner(share.owner)
    if not isinstance(share.data, bytes | memoryview):
        raise ShareRejected(f"share data must be bytes, got {type(share.data).__name__}")
    if not isinstance(share.descriptor, bytes):
        raise ShareRejected(f"descriptor must be bytes, got {type(share.descriptor).__name__}")
    check_time("lease_expiry", share.lease_expiry)
    check_time("now", share.stored_at)


def _describe(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    return type(value).__name__


def short(pack_id: bytes, index: int, owner: bytes | None = None) -> str:
    """A share's name short enough for a log line."""
    mine = "" if owner is None else f" of owner {owner.hex()[:8]}"
    return f"{pack_id.hex()[:16]}….{index}{mine}"


class Room(NamedTuple):
    """The space a put must fit in: the store's, and what its owner may use of it."""

    used: int
    capacity: int
    owner_used: int
    owner_quota: int


class Held(NamedTuple):
    """What a put needs to know of the share already held under its key (same owner)."""

    size: int
    lease_expiry: int
    same: bool  # the held bytes are the ones being put


class PutStep(Enum):
    """What a put does to the store, once it is admitted."""

    KEEP = "keep"  # the same share is held with a lease at least as long: change nothing
    EXTEND = "extend"  # the same share is held: take the later lease and its descriptor
    REPLACE = "replace"  # other bytes are held under the key: overwrite them
    ADD = "add"  # nothing is held under the key


def plan_put(share: StoredShare, held: Held | None, room: Room) -> PutStep:
    """The step a put takes, or `StoreFull` / `OwnerQuotaFull` when it must store nothing.

    The key includes the owner, so `held` is this owner's own share: another
    owner's share under the same pack id is a different key and never in the way.
    A re-put of held bytes costs no space, so it is never refused as full; a
    replacement needs room only for what it adds beyond the bytes it frees."""
    if held is not None and held.same:
        return PutStep.EXTEND if share.lease_expiry >= held.lease_expiry else PutStep.KEEP
    freed = held.size if held is not None else 0
    if room.used - freed + len(share.data) > room.capacity:
        raise _full_error(len(share.data), room.used - freed, room.capacity)
    if room.owner_used - freed + len(share.data) > room.owner_quota:
        raise _quota_error(share.owner, len(share.data), room.owner_used - freed, room.owner_quota)
    return PutStep.ADD if held is None else PutStep.REPLACE


def _full_error(needed: int, used: int, capacity: int) -> StoreFull:
    free = max(0, capacity - used)
    return StoreFull(
        f"store full: {free} bytes free ({format_size(free)}), {needed} bytes needed "
        f"({format_size(needed)}) of capacity {capacity} bytes ({format_size(capacity)})"
    )


def _quota_error(owner: bytes, needed: int, used: int, quota: int) -> OwnerQuotaFull:
    free = max(0, quota - used)
    return OwnerQuotaFull(
        f"owner quota full: owner {owner.hex()[:8]} may use {quota} bytes "
        f"({format_size(quota)}) here, {free} bytes free, {needed} bytes needed"
    )
