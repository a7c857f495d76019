"""The records this peer holds as a replica, within what it chose to spend on them.

Any identity can sign records under keys of its own, so what a replica keeps
is bounded by bytes, not only by count: per owner key, so one writer cannot
crowd out the others, and in total, so many writers cannot exhaust memory. A
record is also kept only where a lookup for its key will look (`near_key`),
so nobody can park records on a peer of their choosing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from p2pbackup.base.ids import distance
from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.dht.records import Record, accept
from p2pbackup.errors import RecordRejected
from p2pbackup.net.contact import Contact

MAX_RECORDS = 100_000
# Two of the largest records one owner may sign (2 MiB each): an owner's index
# always fits, while sixteen owners are needed to fill the whole budget.
OWNER_BUDGET = 4 * 1024 * 1024
TOTAL_BUDGET = 64 * 1024 * 1024
_ENTRY_OVERHEAD = SIGNATURE_BYTES + 8  # the signature and the sequence number


def record_bytes(record: Record) -> int:
    """What a record costs to keep: its values plus the fixed parts of each entry."""
    entries = sum(len(e.value) + _ENTRY_OVERHEAD for e in record.entries)
    return PUBLIC_KEY_BYTES + len(record.name) + entries


def near_key(own_id: bytes, key: bytes, closest: Sequence[Contact], k: int) -> bool:
    """True when fewer than `k` of the known contacts `closest` to `key` are nearer than us.

    `closest` is the routing table's k closest contacts to the key, nearest
    first; a table that knows fewer than k contacts cannot tell, and accepts."""
    if len(closest) < k:
        return True
    return distance(closest[k - 1].node_id, key) >= distance(own_id, key)


class RecordStore:
    """In-memory replica store bounded in keys, in bytes per owner and in bytes in all."""

    def __init__(
        self,
        max_records: int = MAX_RECORDS,
        *,
        owner_budget: int = OWNER_BUDGET,
        total_budget: int = TOTAL_BUDGET,
    ) -> None:
        self.max_records = max_records
        self.owner_budget = owner_budget
        self.total_budget = total_budget
        self._records: dict[bytes, Record] = {}
        self._owner_bytes: dict[bytes, int] = {}
        self.total_bytes = 0

    def get(self, key: bytes) -> Record | None:
        return self._records.get(key)

    def owner_bytes(self, owner: bytes) -> int:
        return self._owner_bytes.get(owner, 0)

    def put(self, record: Record) -> Record:
        """Store after the replica's checks; raises `RecordRejected` on forged or older
        writes, and on writes that would take an owner or the store past its budget."""
        current = self._records.get(record.key)
        if current is None:
            if len(self._records) >= self.max_records:
                raise RecordRejected("this peer holds its maximum number of records")
            # A new key costs at least the record itself: refuse before checking
            # signatures, so a flood of refusals costs no verification.
            self._check_budget(record.owner, record_bytes(record))
        merged = accept(current, record)
        held = record_bytes(current) if current is not None else 0
        grown = record_bytes(merged) - held
        self._check_budget(record.owner, grown)
        self._records[record.key] = merged
        self._owner_bytes[record.owner] = self.owner_bytes(record.owner) + grown
        self.total_bytes += grown
        return merged

    def _check_budget(self, owner: bytes, grown: int) -> None:
        if self.owner_bytes(owner) + grown > self.owner_budget:
            raise RecordRejected(
                f"this peer keeps at most {self.owner_budget} bytes of records per owner"
            )
        if self.total_bytes + grown > self.total_budget:
            raise RecordRejected(f"this peer keeps at most {self.total_budget} bytes of records")

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)
