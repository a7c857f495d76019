"""The half of the share-store contract that does not care where bytes live: every call
checked before it reaches a store, the space offered and the space used (in all and
per owner), and the figures status output reads. Written once, so the simulator's
stores and a real peer's cannot drift apart in what they refuse or how they count.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import cast

from p2pbackup.store.admission import (
    Room,
    check_key,
    check_owner,
    check_put,
    check_time,
    proof_of,
    tree_of,
)
from p2pbackup.store.contract import BlockProof, Lease, ShareInfo, ShareKey, StoredShare


class ShareStore(ABC):
    """The share-store contract (see `p2pbackup.store.contract`).

    Checks each call, then hands it to the subclass's `_`-named step of the same name.

    Subclasses report every byte they start or stop holding through `_account`,
    which keeps `_used` and each owner's share of it."""

    def __init__(self, capacity: int, owner_quota: int | None = None) -> None:
        if capacity < 0:
            raise ValueError(f"capacity cannot be negative, got {capacity}")
        if owner_quota is not None and owner_quota < 0:
            raise ValueError(f"owner quota cannot be negative, got {owner_quota}")
        self._capacity = capacity
        # None: any one owner may fill the whole capacity.
        self._owner_quota = capacity if owner_quota is None else min(owner_quota, capacity)
        self._used = 0
        self._by_owner: dict[bytes, int] = {}
        self._corrupt_dropped = 0

    def _account(self, owner: bytes, delta: int) -> None:
        """Count `delta` bytes more (or fewer) held for `owner`."""
        self._used += delta
        left = self._by_owner.get(owner, 0) + delta
        if left:
            self._by_owner[owner] = left
        else:
            self._by_owner.pop(owner, None)

    def _room(self, owner: bytes) -> Room:
        return Room(self._used, self._capacity, self.owner_used(owner), self._owner_quota)

    def put(
        self,
        pack_id: bytes,
        index: int,
        data: bytes | memoryview,
        descriptor: bytes,
        owner: bytes,
        lease_expiry: int,
        now: int,
        root: bytes | None = None,
        leaves: list[bytes] | None = None,
    ) -> None:
        """Hold a share; raises `StoreFull` or `ShareRejected` with a reason, storing nothing.

        `root` is the share's Merkle root when the caller has checked it already, and
        `leaves` the leaf hashes that check computed (kept for the next `prove` of the
        share); see `p2pbackup.store.contract` for the re-put and refusal rules.

        `data` may be a read-only view of the frame the share arrived in: the put path
        only measures, hashes and writes it, and a store that keeps shares in memory
        keeps a copy (decision 0076). Typed as bytes within, where every share read
        back is bytes."""
        share = StoredShare(pack_id, index, cast(bytes, data), descriptor, owner, lease_expiry, now)
        check_put(share)
        self._put(share, root)
        if leaves is not None:
            self._keep_leaves(ShareKey(pack_id, index, owner), leaves)

    def _keep_leaves(self, key: ShareKey, leaves: list[bytes]) -> None:  # noqa: B027 - optional
        """Keep a share's leaf hashes for its next proof; a store that has its bytes at
        hand (in memory) has no use for them."""

    def get(self, pack_id: bytes, index: int, owner: bytes) -> StoredShare | None:
        """`owner`'s share, verified against its recorded digest, or None."""
        key = _checked(pack_id, index, owner)
        return self._get(key)

    def serve(self, pack_id: bytes, index: int, owner: bytes) -> StoredShare | None:
        """`owner`'s share as held, for a peer that checks it against its signed root
        itself (an owner restoring, a sibling repairing): a store that can read a
        share unchecked does not hash it (decision 0057); a missing one is None."""
        return self._serve(_checked(pack_id, index, owner))

    def _serve(self, key: ShareKey) -> StoredShare | None:
        """A store whose shares are at hand hands out what `get` returns."""
        return self.get(*key)

    def prove(self, pack_id: bytes, index: int, owner: bytes, block: int) -> BlockProof | None:
        """Block `block` of `owner`'s share with its Merkle path (an audit's answer), or
        None when the share is not held, has no such block or no longer matches its
        digest (then dropped, as `get` drops it)."""
        return self._prove(_checked(pack_id, index, owner), block)

    def _prove(self, key: ShareKey, block: int) -> BlockProof | None:
        """From a checked `get`; a store that can read a share unchecked does better."""
        share = self._get(key)
        return None if share is None else proof_of(share.data, block, tree_of(share.descriptor))

    def lease(self, pack_id: bytes, index: int, owner: bytes) -> Lease | None:
        """The descriptor and lease `owner`'s share is held under, or None; the bytes
        are neither read nor checked (a renewal serves none: `get` and `prove` check)."""
        return self._lease(_checked(pack_id, index, owner))

    def _lease(self, key: ShareKey) -> Lease | None:
        share = self._get(key)
        return None if share is None else Lease(share.descriptor, share.lease_expiry)

    def has(self, pack_id: bytes, index: int, owner: bytes) -> bool:
        """Whether `owner`'s share is held; does not read or verify the data."""
        return self._has(_checked(pack_id, index, owner))

    def delete(self, pack_id: bytes, index: int, owner: bytes) -> bool:
        """Drop `owner`'s share; False when it was not held."""
        return self._delete(_checked(pack_id, index, owner))

    def indices(self, pack_id: bytes, owner: bytes | None = None) -> list[int]:
        """The indices of `owner`'s shares of this pack held here (normally none or one);
        without `owner`, those of every owner (for status and tests: a peer answering
        about a share always names the owner)."""
        check_key(pack_id, 0)
        if owner is not None:
            check_owner(owner)
        return self._indices(pack_id, owner)

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

    def owner_used(self, owner: bytes) -> int:
        """Bytes held here for `owner`."""
        return self._by_owner.get(owner, 0)

    @property
    def owner_quota(self) -> int:
        return self._owner_quota

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def free_bytes(self) -> int:
        """What the store can still take; a store on a disk also counts the disk's room."""
        return max(0, self._capacity - self._used)

    def stats(self) -> dict[str, int]:
        """Counts and byte totals for status output and metrics."""
        shares, packs, owners = self._census()
        return {
            "shares": shares,
            "packs": packs,
            "owners": owners,
            "used_bytes": self._used,
            "capacity": self._capacity,
            "owner_quota": self._owner_quota,
            "free_bytes": self.free_bytes,
            "corrupt_dropped": self._corrupt_dropped,
        }

    @abstractmethod
    def _put(self, share: StoredShare, root: bytes | None) -> None:
        """Store a share that passed the checks; `share.stored_at` is the caller's `now`."""

    @abstractmethod
    def _get(self, key: ShareKey) -> StoredShare | None: ...

    @abstractmethod
    def _has(self, key: ShareKey) -> bool: ...

    @abstractmethod
    def _delete(self, key: ShareKey) -> bool: ...

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
    def _indices(self, pack_id: bytes, owner: bytes | None) -> list[int]: ...

    @abstractmethod
    def list_shares(self) -> Iterator[ShareInfo]:
        """Every held share as (pack_id, index, size, lease_expiry, owner), in key order."""

    @abstractmethod
    def close(self) -> None:
        """Release files and locks; the store is unusable afterwards."""


def _checked(pack_id: bytes, index: int, owner: bytes) -> ShareKey:
    check_key(pack_id, index)
    check_owner(owner)
    return ShareKey(pack_id, index, owner)
