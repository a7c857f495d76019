"""What every share store promises, so the peer, the maintainer and the simulator can
hold other owners' shares without knowing whether they sit in dicts or on a disk.

The API is synchronous and does no networking, so the peer calls it through
`trio.to_thread` and the simulator calls `MemoryShareStore` inline. Both
implementations keep one contract:

- `put` refuses a share that does not fit with `StoreFull`, whose message says
  how many bytes are free and how many were needed, and leaves nothing behind;
  putting a share that is already held (same key, same bytes) costs no space
  and may only extend its lease.
- A share is refused (`ShareRejected`) when its key is malformed or when the key
  is already held for a different owner, so no peer can overwrite someone
  else's share by reusing its pack id.
- `get` never serves a share whose bytes no longer match the digest recorded
  when it was stored; such a share is dropped, so repair notices it is gone.
  The digest is the share's Merkle root, the one its descriptor signs: a peer
  that has just checked a share against its descriptor passes the root to
  `put` rather than hashing the bytes a second time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from p2pbackup.errors import P2PBackupError

ShareKey = tuple[bytes, int]
"""(pack id, share index): names one share of one pack."""


class StoreFull(P2PBackupError):
    """The share does not fit in the space this peer offers; place it on another peer."""


class ShareRejected(P2PBackupError, ValueError):
    """The share is malformed or its key is held for a different owner."""


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


class ShareStore(Protocol):
    """What the peer needs from wherever it keeps other owners' shares."""

    def put(
        self,
        pack_id: bytes,
        index: int,
        data: bytes,
        descriptor: bytes,
        owner: bytes,
        lease_expiry: int,
        now: int,
        root: bytes | None = None,
    ) -> None:
        """Hold a share; raises `StoreFull` or `ShareRejected` with a reason, storing nothing.

        `root` is the share's Merkle root when the caller has checked it already."""
        ...

    def get(self, pack_id: bytes, index: int) -> StoredShare | None:
        """The share, verified against its recorded digest, or None."""
        ...

    def has(self, pack_id: bytes, index: int) -> bool:
        """Whether the share is indexed (cheap: does not read the data)."""
        ...

    def indices(self, pack_id: bytes) -> list[int]:
        """The indices of this pack's shares held here (normally none or one)."""
        ...

    def delete(self, pack_id: bytes, index: int) -> bool:
        """Drop the share; False when it was not held."""
        ...

    def list_shares(self) -> Iterator[ShareInfo]:
        """Every held share as (pack_id, index, size, lease_expiry)."""
        ...

    def renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None = None
    ) -> int:
        """Set the lease of `owner`'s shares of `pack_id` (and the descriptor that says so,
        if given); returns how many were updated."""
        ...

    def expired(self, now: int) -> list[ShareKey]:
        """Keys whose lease has run out (`lease_expiry <= now`), soonest first."""
        ...

    @property
    def used_bytes(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    def stats(self) -> dict[str, int]:
        """Counts and byte totals for status output and metrics."""
        ...

    def close(self) -> None:
        """Release files and locks; the store is unusable afterwards."""
        ...
