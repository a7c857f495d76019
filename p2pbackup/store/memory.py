"""The share-store contract in dicts: the simulator runs thousands of peers whose disks
are imaginary, and tests want a store that needs no directory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from p2pbackup.codec.erasure import leaves_proof, share_block, share_leaves
from p2pbackup.store.admission import Held, PutStep, plan_put, tree_of
from p2pbackup.store.contract import BlockProof, ShareInfo, ShareKey, StoredShare
from p2pbackup.store.quota import ShareStore


def _key(share: StoredShare) -> ShareKey:
    return ShareKey(share.pack_id, share.index, share.owner)


class MemoryShareStore(ShareStore):
    """Holds shares as `StoredShare` records; nothing rots, so nothing is dropped as corrupt."""

    def __init__(self, capacity: int, owner_quota: int | None = None) -> None:
        super().__init__(capacity, owner_quota)
        self._shares: dict[ShareKey, StoredShare] = {}
        # The keys of each pack's shares: a query or a renewal names one pack, so
        # neither scans every share held.
        self._by_pack: dict[bytes, set[ShareKey]] = {}
        # Each proven share's tree and leaf hashes, with the record they are of: a
        # simulated holder proves the same shares round after round.
        self._leaves: dict[ShareKey, tuple[StoredShare, int, list[bytes]]] = {}
        # Bumped whenever a key comes or goes: the census reuses what it read of an
        # unchanged store.
        self.keys_version = 0

    def _put(self, share: StoredShare, root: bytes | None) -> None:
        if not isinstance(share.data, bytes):  # a view of the frame it came in: kept whole
            share = dataclasses.replace(share, data=bytes(share.data))
        key = _key(share)
        old = self._shares.get(key)
        held = None
        if old is not None:
            held = Held(len(old.data), old.lease_expiry, old.data == share.data)
        step = plan_put(share, held, self._room(share.owner))
        if step is PutStep.KEEP:
            return
        if old is not None and step is PutStep.EXTEND:
            self._shares[key] = dataclasses.replace(share, stored_at=old.stored_at)
            return
        self._shares[key] = share
        self.keys_version += old is None
        self._by_pack.setdefault(key.pack_id, set()).add(key)
        self._account(share.owner, len(share.data) - (held.size if held is not None else 0))

    def _get(self, key: ShareKey) -> StoredShare | None:
        return self._shares.get(key)

    def _prove(self, key: ShareKey, block: int) -> BlockProof | None:
        """`proof_of` from leaf hashes kept per share record: hashing the share again
        for every proof was a twentieth of a simulated month."""
        share = self._shares.get(key)
        if share is None:
            return None
        kept = self._leaves.get(key)
        if kept is None or kept[0] is not share:  # new, or replaced by a put or renewal
            tree = tree_of(share.descriptor)
            kept = self._leaves[key] = (share, tree, share_leaves(share.data, tree))
        _, tree, leaves = kept
        if not 0 <= block < len(leaves):
            return None
        return BlockProof(share_block(share.data, block), leaves_proof(leaves, block, tree))

    def _has(self, key: ShareKey) -> bool:
        return key in self._shares

    def _indices(self, pack_id: bytes, owner: bytes | None) -> list[int]:
        keys = self._by_pack.get(pack_id, ())
        return sorted(k.idx for k in keys if owner in (None, k.owner))

    def _delete(self, key: ShareKey) -> bool:
        old = self._shares.pop(key, None)
        if old is None:
            return False
        self.keys_version += 1
        self._leaves.pop(key, None)
        keys = self._by_pack[key.pack_id]
        keys.discard(key)
        if not keys:
            del self._by_pack[key.pack_id]
        self._account(old.owner, -len(old.data))
        return True

    def list_shares(self) -> Iterator[ShareInfo]:
        """Every held share, in key order (a snapshot: safe to delete while iterating)."""
        rows = [
            ShareInfo(s.pack_id, s.index, len(s.data), s.lease_expiry, s.owner)
            for _, s in sorted(self._shares.items())
        ]
        return iter(rows)

    def share_keys(self) -> Iterable[ShareKey]:
        """The keys of every held share, unordered: the simulator's hourly census reads
        thousands of stores and wants neither the sort nor a row per share."""
        return self._shares.keys()

    def _renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None
    ) -> int:
        count = 0
        for key in self._by_pack.get(pack_id, ()):
            if key.owner == owner:
                share = self._shares[key]
                self._shares[key] = dataclasses.replace(
                    share,
                    descriptor=share.descriptor if descriptor is None else descriptor,
                    lease_expiry=lease_expiry,
                )
                count += 1
        return count

    def _expired(self, now: int) -> list[ShareKey]:
        due = [s for s in self._shares.values() if s.lease_expiry <= now]
        due.sort(key=lambda s: (s.lease_expiry, s.pack_id, s.index, s.owner))
        return [_key(s) for s in due]

    def _census(self) -> tuple[int, int, int]:
        return (
            len(self._shares),
            len(self._by_pack),
            len({k.owner for k in self._shares}),
        )

    def close(self) -> None:
        """Nothing to release."""
