"""The share-store contract in dicts: the simulator runs thousands of peers whose disks
are imaginary, and tests want a store that needs no directory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from p2pbackup.store.admission import Held, PutStep, plan_put
from p2pbackup.store.contract import ShareInfo, ShareKey, StoredShare
from p2pbackup.store.quota import ShareStore


class MemoryShareStore(ShareStore):
    """Holds shares as `StoredShare` records; nothing rots, so nothing is dropped as corrupt."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self._shares: dict[ShareKey, StoredShare] = {}

    def _put(self, share: StoredShare, root: bytes | None) -> None:
        key = (share.pack_id, share.index)
        old = self._shares.get(key)
        held = None
        if old is not None:
            held = Held(old.owner, len(old.data), old.lease_expiry, old.data == share.data)
        step = plan_put(share, held, self._used, self._capacity)
        if step is PutStep.KEEP:
            return
        if old is not None and step is PutStep.EXTEND:
            self._shares[key] = dataclasses.replace(share, stored_at=old.stored_at)
            return
        self._shares[key] = share
        self._used += len(share.data) - (held.size if held is not None else 0)

    def _get(self, pack_id: bytes, index: int) -> StoredShare | None:
        return self._shares.get((pack_id, index))

    def _has(self, pack_id: bytes, index: int) -> bool:
        return (pack_id, index) in self._shares

    def indices(self, pack_id: bytes) -> list[int]:
        """The indices of this pack's shares held here."""
        return sorted(i for p, i in self._shares if p == pack_id)

    def _delete(self, pack_id: bytes, index: int) -> bool:
        old = self._shares.pop((pack_id, index), None)
        if old is None:
            return False
        self._used -= len(old.data)
        return True

    def list_shares(self) -> Iterator[ShareInfo]:
        """Every held share, in key order (a snapshot: safe to delete while iterating)."""
        rows = [
            ShareInfo(s.pack_id, s.index, len(s.data), s.lease_expiry)
            for _, s in sorted(self._shares.items())
        ]
        return iter(rows)

    def _renew(
        self, pack_id: bytes, owner: bytes, lease_expiry: int, descriptor: bytes | None
    ) -> int:
        count = 0
        for key, share in self._shares.items():
            if share.pack_id == pack_id and share.owner == owner:
                self._shares[key] = dataclasses.replace(
                    share,
                    descriptor=share.descriptor if descriptor is None else descriptor,
                    lease_expiry=lease_expiry,
                )
                count += 1
        return count

    def _expired(self, now: int) -> list[ShareKey]:
        due = [s for s in self._shares.values() if s.lease_expiry <= now]
        due.sort(key=lambda s: (s.lease_expiry, s.pack_id, s.index))
        return [(s.pack_id, s.index) for s in due]

    def _census(self) -> tuple[int, int, int]:
        return (
            len(self._shares),
            len({s.pack_id for s in self._shares.values()}),
            len({s.owner for s in self._shares.values()}),
        )

    def close(self) -> None:
        """Nothing to release."""
