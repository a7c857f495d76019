"""The records this peer holds as a replica."""

from __future__ import annotations

from collections.abc import Iterator

from p2pbackup.dht.records import Record, accept
from p2pbackup.errors import RecordRejected

MAX_RECORDS = 100_000


class RecordStore:
    """In-memory replica store with a bound on how many keys one peer keeps."""

    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self.max_records = max_records
        self._records: dict[bytes, Record] = {}

    def get(self, key: bytes) -> Record | None:
        return self._records.get(key)

    def put(self, record: Record) -> Record:
        """Store after the replica's checks; raises `RecordRejected` on forged or older writes."""
        current = self._records.get(record.key)
        if current is None and len(self._records) >= self.max_records:
            raise RecordRejected("this peer holds its maximum number of records")
        merged = accept(current, record)
        self._records[record.key] = merged
        return merged

    def __iter__(self) -> Iterator[Record]:
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)
