"""What acknowledging only durable writes costs: share puts, catalog pack commits and
record puts with SQLite's `synchronous=FULL` (what the stores run) against NORMAL
(what the share index and catalog ran before decision 0027; records were in memory
before decision 0025), on the same disk in the same minutes.

Rounds alternate the two settings, so a disk that speeds up or slows down during
the run weighs on both; each side reports its median and range, and the cost is
the ratio of the medians.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.snapshot import Locator
from p2pbackup.base.offload import inline
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.dht.records import value_record
from p2pbackup.store import FileShareStore
from p2pbackup.store.admission import digest_of

SETTINGS = ("NORMAL", "FULL")
ROUNDS = 3
SHARES = 64
SHARE_BYTES = 256 * 1024  # about a share of a 1 MiB pack at k=3, rounded down
PACK_COMMITS = 64
CHUNKS_PER_PACK = 64
OWNER = b"O" * 32
RECORDS = 64


@dataclass
class Durability:
    """Seconds per round for each workload and setting."""

    runs: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def median(self, workload: str, setting: str) -> float:
        return statistics.median(self.runs[workload][setting])

    def cost(self, workload: str) -> float:
        normal = self.median(workload, "NORMAL")
        return self.median(workload, "FULL") / normal if normal else 0.0

    def detail(self, workload: str) -> str:
        def side(setting: str) -> str:
            runs = self.runs[workload][setting]
            return (
                f"{setting} {self.median(workload, setting):.3f} ({min(runs):.3f}-{max(runs):.3f})"
            )

        return f"{side('FULL')} vs {side('NORMAL')} s"

    def as_dict(self) -> dict[str, Any]:
        return {
            "rounds": ROUNDS,
            "shares": {"count": SHARES, "bytes": SHARE_BYTES},
            "pack_commits": {"count": PACK_COMMITS, "chunks": CHUNKS_PER_PACK},
            "record_puts": {"count": RECORDS},
            "seconds": self.runs,
            "full_over_normal": {name: round(self.cost(name), 3) for name in self.runs},
        }


def _share_puts(folder: Path, setting: str) -> float:
    data = os.urandom(SHARE_BYTES)
    root = digest_of(data)
    with FileShareStore(folder, 1 << 40, _sync=setting) as store:
        began = time.perf_counter()
        for n in range(SHARES):
            pack_id = n.to_bytes(4, "big") * 5
            store.put(pack_id, n % 10, data, b"descriptor", OWNER, 1 << 30, 0, root=root)
        return time.perf_counter() - began


def _pack_commits(folder: Path, setting: str) -> float:
    catalog = Catalog(folder / "catalog.sqlite3", _sync=setting)
    try:
        began = time.perf_counter()
        for n in range(PACK_COMMITS):
            pack_id = n.to_bytes(4, "big") * 5
            chunks = [
                (os.urandom(32), Locator(pack_id, j * 4096, 4096)) for j in range(CHUNKS_PER_PACK)
            ]
            catalog.record_pack(pack_id, 3, 10, CHUNKS_PER_PACK * 4096, 1, chunks)
        return time.perf_counter() - began
    finally:
        catalog.close()


def _record_puts(folder: Path, setting: str) -> float:
    """A replica's record puts, each awaited until it may be acknowledged."""
    writer = Identity.from_seed(bytes([5]) * 32)
    records = [value_record(writer, b"r%d" % n, 0, os.urandom(200)) for n in range(RECORDS)]
    store = RecordStore.on_disk(folder / "records.sqlite3", run_sync=inline, _sync=setting)

    async def puts() -> float:
        began = time.perf_counter()
        for record in records:
            await store.store(record)
        return time.perf_counter() - began

    try:
        return trio.run(puts)
    finally:
        store.close()


WORKLOADS = {
    "share puts": _share_puts,
    "catalog pack commits": _pack_commits,
    "record puts": _record_puts,
}


def run_durability(workdir: Path) -> Durability:
    """Each workload, each setting, `ROUNDS` times alternated, in fresh folders under
    `workdir` (the disk the mesh runs on)."""
    result = Durability({name: {s: [] for s in SETTINGS} for name in WORKLOADS})
    for round_no in range(ROUNDS):
        order = SETTINGS if round_no % 2 == 0 else SETTINGS[::-1]
        for name, workload in WORKLOADS.items():
            for setting in order:
                folder = Path(tempfile.mkdtemp(prefix="durability-", dir=workdir))
                try:
                    result.runs[name][setting].append(workload(folder, setting))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
    return result


def rows(result: Durability) -> list[tuple[str, str]]:
    """(measure, detail) for the table and the README snippet."""
    return [
        (
            f"{name}: synchronous FULL / NORMAL (median of {ROUNDS}, alternated)",
            f"{result.cost(name):.2f}x; {result.detail(name)}",
        )
        for name in WORKLOADS
    ]
