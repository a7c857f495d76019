"""The half of the share-store contract that does not care where bytes live: every call
checked before it reaches a store, the space offered and the space used, and the
figures status output reads. Written once, so the simulator's stores and a real
peer's cannot drift apart in what they refuse or how they count.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from p2pbackup.store.admission import check_key, check_owner, check_put, check_time
from p2pbackup.store.contract import ShareInfo, ShareKey, StoredShare


class ShareStore(ABC):
    """The share-store contract (see `p2pbackup.store.contract`).

    Checks each call, then hands it to the subclass's `_`-named step of the same name.

    Subclasses keep `_used` equal to the bytes of the shares they hold."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative, got {capacity}")
        self._capacity = capacity
        self._used = 0
        self._corrupt_dropped = 0

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

        `root` is the share's Merkle root when the caller has checked it already; see
        `p2pbackup.store.contract` for the re-put and refusal rules."""
        share = StoredShare(pack_id, index, data, descriptor, owner, lease_expiry, now)
        check_put(share)
        self._put(share, root)

    def get(self, pack_id: bytes, index: int) -> StoredShare | None:
        """The share, verified against its recorded digest, or None."""
        check_key(pack_id, index)
        return self._get(pack_id, index)

    def has(self, pack_id: bytes, index: int) -> bool:
        """Whether the share is held; does not read or verify the data."""
        check_key(pack_id, index)
        return self._has(pack_id, index)

    def delete(self, pack_id: bytes, index: int) -> bool:
        """Drop the share; False when it was not held."""
        check_key(pack_id, index)
        return self._delete(pack_id, index)

    def renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None = None
    ) -> int:
        """Set the lease of `owner`'s shares of `pack_id`; others' shares are untouched."""
        check_key(pack_id, 0)
        check_owner(owner)
        check_time("lease_expiry", lease_expiry)
        return self._renew(pack_id, owner, lease_expiry, descriptor)

    def expired(self, now: int) -> list[ShareKey]:
        """Keys whose lease has run out, soonest first."""
        check_time("now", now)
        return self._expired(now)

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def capacity(self) -> int:
        return self._capacity

    def stats(self) -> dict[str, int]:
        """Counts and byte totals for status output and metrics."""
        shares, packs, owners = self._census()
        return {
            "shares": shares,
            "packs": packs,
            "owners": owners,
            "used_bytes": self._used,
            "capacity": self._capacity,
            "free_bytes": max(0, self._capacity - self._used),
            "corrupt_dropped": self._corrupt_dropped,
        }

    @abstractmethod
    def _put(self, share: StoredShare, root: bytes | None) -> None:
        """Store a share that passed the checks; `share.stored_at` is the caller's `now`."""

    @abstractmethod
    def _get(self, pack_id: bytes, index: int) -> StoredShare | None: ...

    @abstractmethod
    def _has(self, pack_id: bytes, index: int) -> bool: ...

    @abstractmethod
    def _delete(self, pack_id: bytes, index: int) -> bool: ...

    @abstractmethod
    def _renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None
    ) -> int: ...

    @abstractmethod
    def _expired(self, now: int) -> list[ShareKey]: ...

    @abstractmethod
    def _census(self) -> tuple[int, int, int]:
        """How many shares, distinct packs and distinct owners are held."""

    @abstractmethod
    def indices(self, pack_id: bytes) -> list[int]:
        """The indices of this pack's shares held here (normally none or one)."""

    @abstractmethod
    def list_shares(self) -> Iterator[ShareInfo]:
        """Every held share as (pack_id, index, size, lease_expiry)."""

    @abstractmethod
    def close(self) -> None:
        """Release files and locks; the store is unusable afterwards."""
