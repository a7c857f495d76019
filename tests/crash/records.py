"""The DHT record store's workload: a replica takes a new set record, one more entry
of it, and a value record's next sequence number, each acknowledged once `store`
returns, as a replica answers `Stored(True)` only then."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from p2pbackup.base.offload import inline
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.dht.records import Record, set_record, value_record
from tests.crash.harness import Workload, ack

NAME = "records.sqlite3"
WRITER = Identity.from_seed(bytes([7]) * 32)
HELD = set_record(WRITER, b"held", [b"before the workload"])
INDEX = (
    set_record(WRITER, b"index", [b"snapshot one" * 20]),
    set_record(WRITER, b"index", [b"snapshot two" * 20]),
)
VALUE = value_record(WRITER, b"value", 3, b"third")


async def _store_each(path: Path, records: list[tuple[str, Record]], sync: str) -> None:
    # The disk write a worker thread runs on a peer, run here on the traced thread.
    if sync == "FULL":
        store = RecordStore.on_disk(path, run_sync=inline)
    else:
        store = RecordStore.on_disk(path, run_sync=inline, _sync=sync)
    try:
        for label, record in records:
            await store.store(record)
            if label:
                ack(label)
    finally:
        store.close()


def prepare(root: Path) -> None:
    trio.run(_store_each, root / NAME, [("", HELD)], "FULL")


def run(sync: str) -> None:
    steps = [("index0", INDEX[0]), ("index1", INDEX[1]), ("value3", VALUE)]
    trio.run(_store_each, Path(sys.argv[1]) / NAME, steps, sync)


def check(root: Path, acked: tuple[str, ...]) -> None:
    """The store opens; what was held and acknowledged is there; the rest is whole or absent
    (a record loaded at start is checked entry by entry, so nothing forged is held)."""
    store = RecordStore.on_disk(root / NAME)
    try:
        held = store.get(HELD.key)
        assert held is not None and held.values == HELD.values, "a held record was lost"
        index = store.get(INDEX[0].key)
        values = index.values if index is not None else frozenset()
        for n, record in enumerate(INDEX):
            if f"index{n}" in acked:
                assert record.value in values, f"acknowledged index entry {n} lost"
        value = store.get(VALUE.key)
        if "value3" in acked:
            assert value is not None and value.seq == 3, "acknowledged value record lost"
        assert value is None or value.value == VALUE.value
    finally:
        store.close()


def workload(sync: str = "FULL") -> Workload:
    script = f"from tests.crash.records import run; run({sync!r})"
    return Workload("record put", prepare, script, check)
