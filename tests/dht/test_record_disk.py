"""Records on disk: what a store acknowledged is in its file, and comes back at start
under the same checks and budgets; a damaged file is refused in one line."""

from __future__ import annotations

import contextlib
import random
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pbackup.base.offload import inline
from p2pbackup.cli.localmesh import CLI
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.record_disk import RecordDisk, RecordFileError, list_records
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.dht.records import MAX_VALUE, Record, set_record, value_record
from p2pbackup.errors import RecordRejected

OWNERS = [Identity.from_seed(bytes([i]) * 32) for i in range(1, 4)]
BIG = [bytes([i]) * MAX_VALUE for i in range(32)]  # 32 x 64 KiB: the 2 MiB record limit


def _run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return trio.run(fn)


def _store_all(store: RecordStore, records: list[Record]) -> None:
    async def go() -> None:
        for record in records:
            with contextlib.suppress(RecordRejected):
                await store.store(record)

    _run(go)


def _random_writes(rng: random.Random, count: int) -> list[Record]:
    """Set and value records of a few owners, some under the same names (merges, newer
    values, older values a replica refuses)."""
    writes = []
    for _ in range(count):
        owner = rng.choice(OWNERS)
        name = b"n%d" % rng.randrange(4)
        if rng.random() < 0.5:
            values = [rng.randbytes(rng.randrange(1, 200)) for _ in range(rng.randrange(1, 4))]
            writes.append(set_record(owner, b"set-" + name, values, seq=rng.randrange(3)))
        else:
            seq = rng.randrange(10)
            writes.append(value_record(owner, b"value-" + name, seq, rng.randbytes(50)))
    return writes


def _held(store: RecordStore) -> dict[bytes, frozenset[object]]:
    return {r.key: frozenset(r.entries) for r in store}


@pytest.mark.parametrize("seed", range(5))
def test_a_reopened_store_holds_what_the_last_one_held(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "records.sqlite3"
    store = RecordStore.on_disk(path, run_sync=inline)
    _store_all(store, _random_writes(random.Random(seed), 60))
    before = _held(store)
    store.close()
    again = RecordStore.on_disk(path, run_sync=inline)
    assert _held(again) == before
    assert again.total_bytes == store.total_bytes
    assert {o.public_key: again.owner_bytes(o.public_key) for o in OWNERS} == {
        o.public_key: store.owner_bytes(o.public_key) for o in OWNERS
    }


def test_an_acknowledged_entry_is_in_the_file_before_the_store_closes(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    store = RecordStore.on_disk(path, run_sync=inline)
    record = set_record(OWNERS[0], b"snapshots", [b"one"])
    _store_all(store, [record])
    # A second reader, as after a crash that left the first one's memory behind.
    assert [r.entries for r in list_records(path)] == [record.entries]
    _store_all(store, [set_record(OWNERS[0], b"snapshots", [b"two"])])
    assert [r.values for r in list_records(path)] == [frozenset({b"one", b"two"})]
    store.close()


def test_a_refused_record_never_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    store = RecordStore.on_disk(path, run_sync=inline)
    _store_all(store, [value_record(OWNERS[0], b"v", 5, b"new")])
    forged = set_record(OWNERS[1], b"s", [b"x"])
    forged = Record(OWNERS[2].public_key, forged.name, forged.kind, forged.entries)
    older = value_record(OWNERS[0], b"v", 4, b"old")
    for record in (forged, older):
        with pytest.raises(RecordRejected):
            trio.run(store.store, record)
    assert [r.value for r in list_records(path)] == [b"new"]
    store.close()


def test_one_more_entry_of_a_large_set_writes_that_entry_alone(tmp_path: Path) -> None:
    written: list[int] = []

    async def counting(fn: Callable[..., Any], *args: Any) -> Any:
        written.append(sum(len(e.value) for e in args[1]))
        return fn(*args)

    store = RecordStore.on_disk(tmp_path / "records.sqlite3", run_sync=counting)
    owner = OWNERS[0]
    _store_all(store, [set_record(owner, b"index", BIG[:30])])
    _store_all(store, [set_record(owner, b"index", [b"tiny"])])
    _store_all(store, [set_record(owner, b"index", BIG[:30])])  # nothing new: no write
    assert written == [30 * MAX_VALUE, 4]
    store.close()


def test_budgets_hold_on_reload_and_what_they_drop_leaves_the_file(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    roomy = RecordStore.on_disk(
        path, run_sync=inline, owner_budget=2**30, total_budget=2**30, max_records=100
    )
    hog = OWNERS[0]
    _store_all(roomy, [set_record(hog, b"a%d" % i, BIG) for i in range(4)])
    _store_all(roomy, [set_record(OWNERS[1], b"small", [b"x"])])
    assert len(roomy) == 5
    roomy.close()
    tight = RecordStore.on_disk(
        path, run_sync=inline, owner_budget=5 * 1024 * 1024, total_budget=64 * 1024 * 1024
    )
    assert tight.owner_bytes(hog.public_key) <= tight.owner_budget
    assert len(tight) == 3  # two of the hog's records, and the other owner's
    assert tight.get(set_record(OWNERS[1], b"small", [b"x"]).key) is not None
    tight.close()
    assert len(list_records(path)) == 3


def test_a_forged_row_in_the_file_is_dropped_at_start(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    good = set_record(OWNERS[0], b"index", [b"kept"])
    bad = set_record(OWNERS[1], b"index", [b"altered"])
    bad = Record(
        bad.owner,
        bad.name,
        bad.kind,
        (type(bad.entries[0])(0, b"other", bad.entries[0].signature),),
    )
    disk = RecordDisk(path)
    disk.write(good, good.entries)
    disk.write(bad, bad.entries)
    disk.close()
    store = RecordStore.on_disk(path, run_sync=inline)
    assert [r.key for r in store] == [good.key]
    store.close()
    assert [r.key for r in list_records(path)] == [good.key]


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(3).randbytes(20_000))


def _torn(path: Path) -> None:
    store = RecordStore.on_disk(path, run_sync=inline)
    values = [random.Random(i).randbytes(1000) for i in range(300)]
    _store_all(store, [set_record(OWNERS[0], b"index", values)])
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [_garbage, _torn])
def test_a_damaged_file_is_refused_in_one_line(
    tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "records.sqlite3"
    damage(path)
    with pytest.raises(RecordFileError) as caught:
        RecordStore.on_disk(path, run_sync=inline)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message


def test_the_file_is_its_users_alone(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite3"
    RecordStore.on_disk(path, run_sync=inline).close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_serve_stops_on_a_damaged_records_file_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = [*CLI, "--home", str(home)]
    subprocess.run([*base, "init", "--peer-only"], capture_output=True, check=True, timeout=60)
    _garbage(home / "records.sqlite3")
    run = subprocess.run(
        [*base, "serve", "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60
    )
    assert run.returncode != 0
    assert run.stderr.startswith("error: cannot read the records file ")
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
