"""What durable records cost: `python -m benchmarks.records [folder]`.

A replica acknowledges a record only once its entries are committed to the
records file (decision 0025). This measures one put of a small record in
memory only (before), with the file at `synchronous=NORMAL` (a commit that a
power cut may roll back) and at `synchronous=FULL` (the setting chosen), in
the folder given (default: a temporary one, which may be tmpfs: give a folder
on the disk the peers use). It also times adding one entry to a set that
already holds thousands, and loading a full file at start.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import trio

from p2pbackup.base.offload import inline
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.record_disk import RecordDisk
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.dht.records import Record, set_record, value_record

PUTS = 500
SET_ENTRIES = 4000


def _puts(store: RecordStore, records: list[Record]) -> float:
    """Seconds per put, each awaited to its acknowledgement."""

    async def go() -> float:
        start = time.perf_counter()
        for record in records:
            await store.store(record)
        return (time.perf_counter() - start) / len(records)

    return trio.run(go)


def _on_disk(path: Path, synchronous: str) -> RecordStore:
    store = RecordStore.on_disk(path, run_sync=inline, max_records=10 * PUTS)
    disk = store._disk  # the benchmark alone sets the other level, to compare
    assert isinstance(disk, RecordDisk)
    disk._db.execute(f"PRAGMA synchronous={synchronous}")
    return store


def main(folder: Path) -> None:
    owners = [Identity.generate() for _ in range(8)]
    records = [value_record(owners[i % 8], b"r%d" % i, 1, bytes(200)) for i in range(PUTS)]
    memory = _puts(RecordStore(), records)
    normal = _puts(_on_disk(folder / "normal.sqlite3", "NORMAL"), records)
    full = _puts(_on_disk(folder / "full.sqlite3", "FULL"), records)
    print(f"one put of a small record, {PUTS} puts, in {folder}")
    print(f"  memory only (before)      {memory * 1e6:9.1f} µs")
    print(f"  file, synchronous=NORMAL  {normal * 1e6:9.1f} µs  ({normal / memory:.1f}x memory)")
    print(
        f"  file, synchronous=FULL    {full * 1e6:9.1f} µs  ({full / memory:.1f}x memory, "
        f"{full / normal:.1f}x NORMAL)"
    )

    owner = owners[0]
    big = set_record(owner, b"index", [b"%06d" % i + bytes(100) for i in range(SET_ENTRIES)])
    store = _on_disk(folder / "set.sqlite3", "FULL")
    whole = _puts(store, [big])
    one = _puts(store, [set_record(owner, b"index", [b"new%d" % i]) for i in range(50)])
    print(
        f"set of {SET_ENTRIES} entries: first write {whole * 1e3:.1f} ms, "
        f"each added entry {one * 1e3:.2f} ms"
    )
    store.close()

    start = time.perf_counter()
    RecordStore.on_disk(folder / "full.sqlite3", run_sync=inline).close()
    RecordStore.on_disk(folder / "set.sqlite3", run_sync=inline).close()
    loaded = time.perf_counter() - start
    print(f"start: load and check {PUTS + SET_ENTRIES + 50} entries in {loaded * 1e3:.0f} ms")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
