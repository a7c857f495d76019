"""The records this peer holds as a replica, within what it chose to spend on them.

Any identity can sign records under keys of its own, so what a replica keeps
is bounded by bytes, not only by count: per owner key, so one writer cannot
crowd out the others, and in total, so many writers cannot exhaust memory. A
record is also kept only where a lookup for its key will look (`near_key`),
so nobody can park records on a peer of their choosing.

On a real peer the store is backed by a records file (`record_disk`): `store`
answers only once the new entries are committed durably, written off the event
loop one put at a time; the file is read back at start under the same budgets.
The simulator keeps records in memory only (decision 0025).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import trio

from p2pbackup.base.ids import distance
from p2pbackup.base.offload import RunSync, inline, to_thread
from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES
from p2pbackup.dht.record_disk import RecordDisk, RecordFileError
from p2pbackup.dht.records import Record, accept
from p2pbackup.errors import RecordRejected
from p2pbackup.net.contact import Contact

log = logging.getLogger("p2pbackup.dht")

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
    """Replica store bounded in keys, in bytes per owner and in bytes in all; in memory,
    or in memory in front of a records file (`on_disk`)."""

    def __init__(
        self,
        max_records: int = MAX_RECORDS,
        *,
        owner_budget: int = OWNER_BUDGET,
        total_budget: int = TOTAL_BUDGET,
        disk: RecordDisk | None = None,
        run_sync: RunSync = inline,
    ) -> None:
        self.max_records = max_records
        self.owner_budget = owner_budget
        self.total_budget = total_budget
        self._records: dict[bytes, Record] = {}
        self._owner_bytes: dict[bytes, int] = {}
        self.total_bytes = 0
        self._disk = disk
        self._run_sync = run_sync
        # One durable write at a time: memory follows the file, put after put.
        self._lock = trio.Lock()

    @classmethod
    def on_disk(
        cls,
        path: Path,
        *,
        run_sync: RunSync = to_thread,
        max_records: int = MAX_RECORDS,
        owner_budget: int = OWNER_BUDGET,
        total_budget: int = TOTAL_BUDGET,
        _sync: str = "FULL",
    ) -> RecordStore:
        """The store backed by the records file at `path`, with what it holds loaded.

        Raises `RecordFileError` (one line) when the file cannot be read."""
        disk = RecordDisk(path, _sync=_sync)
        store = cls(
            max_records,
            owner_budget=owner_budget,
            total_budget=total_budget,
            disk=disk,
            run_sync=run_sync,
        )
        try:
            store._reload(disk)
        except BaseException:
            disk.close()
            raise
        return store

    def _reload(self, disk: RecordDisk) -> None:
        """Load the file under the same checks and budgets as a put; drop what fails them,
        so memory and file agree."""
        dropped: list[bytes] = []
        for record in disk.load():
            try:
                self.put(record)
            except RecordRejected as exc:
                dropped.append(record.key)
                log.warning("dropping a record from %s: %s", disk.path, exc)
        if dropped:
            disk.drop(dropped)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()

    def get(self, key: bytes) -> Record | None:
        return self._records.get(key)

    def owner_bytes(self, owner: bytes) -> int:
        return self._owner_bytes.get(owner, 0)

    def put(self, record: Record) -> Record:
        """Store in memory after the replica's checks; raises `RecordRejected` on forged
        or older writes, and on writes that would take an owner or the store past its
        budget. Never touches the file: `store` is the durable path."""
        merged, grown = self._admit(record)
        self._keep(merged, grown)
        return merged

    async def store(self, record: Record) -> Record:
        """`put`, and on a store with a file, return only once the new entries are
        committed durably: only then may the put be acknowledged."""
        if self._disk is None:
            return self.put(record)
        disk = self._disk
        async with self._lock:
            current = self._records.get(record.key)
            merged, grown = self._admit(record)
            held = set(current.entries) if current is not None else set()
            fresh = [e for e in merged.entries if e not in held]
            if fresh:
                try:
                    await self._run_sync(disk.write, merged, fresh)
                except RecordFileError as exc:
                    raise RecordRejected(f"this peer cannot keep records now: {exc}") from None
            self._keep(merged, grown)
            return merged

    def _admit(self, record: Record) -> tuple[Record, int]:
        """The record to hold after `record`, and the bytes it adds; raises on refusal."""
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
        return merged, grown

    def _keep(self, merged: Record, grown: int) -> None:
        self._records[merged.key] = merged
        self._owner_bytes[merged.owner] = self.owner_bytes(merged.owner) + grown
        self.total_bytes += grown

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
