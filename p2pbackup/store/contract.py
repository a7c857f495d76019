"""What every share store promises, so the peer, the maintainer and the simulator can
hold other owners' shares without knowing whether they sit in dicts or on a disk.

The API is synchronous and does no networking, so the peer calls it through
`trio.to_thread` and the simulator calls `MemoryShareStore` inline. Both
implementations keep one contract:

- `put` refuses a share that does not fit with `StoreFull`, whose message says
  how many bytes are free and how many were needed, and leaves nothing behind;
  putting a share that is already held (same key, same bytes) costs no space
  and may only extend its lease.
- A share is named by its owner's key, its pack id and its index: two owners'
  shares under one pack id are two shares that never touch, so nobody can
  overwrite, block or squat another owner's slot by reusing its pack id.
  Every call that names one share names its owner.
- `put` also refuses with `OwnerQuotaFull` (a `StoreFull`) when the share would
  take its owner past the per-owner quota, so one identity cannot fill the
  space every other owner shares.
- A share is refused (`ShareRejected`) when its key is malformed.
- `get` never serves a share whose bytes no longer match the digest recorded
  when it was stored; such a share is dropped, so repair notices it is gone.
  The digest is the share's Merkle root, the one its descriptor signs: a peer
  that has just checked a share against its descriptor passes the root to
  `put` rather than hashing the bytes a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from p2pbackup.errors import P2PBackupError


class BlockProof(NamedTuple):
    """One block of a held share and its Merkle path up to the share's root."""

    block: bytes
    proof: list[bytes]


class Lease(NamedTuple):
    """What renewing a held share needs of it: its descriptor and its lease, no bytes."""

    descriptor: bytes
    lease_expiry: int


class ShareKey(NamedTuple):
    """Names one share: one owner's share `idx` of pack `pack_id`."""

    pack_id: bytes
    idx: int  # `index` would shadow tuple.index
    owner: bytes


class StoreFull(P2PBackupError):
    """The share does not fit in the space this peer offers; place it on another peer."""


class OwnerQuotaFull(StoreFull):
    """The share would take its owner past what this peer holds for any one owner."""


class ShareRejected(P2PBackupError, ValueError):
    """The share or its key is malformed."""


class StoreLocked(P2PBackupError):
    """Another process has this share store open."""


@dataclass(frozen=True)
class StoredShare:
    pack_id: bytes
    index: int
    data: bytes
    descriptor: bytes
    owner: bytes
    lease_expiry: int
    stored_at: int


class ShareInfo(NamedTuple):
    """One row of `list_shares`: enough to plan audits and collection without reading data."""

    pack_id: bytes
    idx: int  # `index` would shadow tuple.index
    size: int
    lease_expiry: int
    owner: bytes
