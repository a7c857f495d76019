"""Each chunk of a big file is read, hashed and sealed where `work_sync` puts it, and
everything else (small files' windows, trees, index blobs) stays where `run_sync` runs
it: the engine process gives a big file's chunks a worker thread and keeps the many
small steps inline."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from p2pbackup.backup.catalog import Catalog
from p2pbackup.base.offload import to_thread
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fs import backup, codec, rand_bytes, restorer, snapshot_of, write

BIG = 3 * 1024 * 1024 // 2  # over the read-ahead's small-file limit: read chunk by chunk


def _tree(root: Path) -> None:
    rng = random.Random(7)
    for folder in ("a", "b/c"):
        for i in range(5):
            (root / folder).mkdir(parents=True, exist_ok=True)
            write(root / folder / f"small{i}", rand_bytes(rng, 3000 + 500 * i))
    write(root / "big.bin", rand_bytes(rng, BIG))


class Recorder:
    """A run_sync that runs inline and remembers the name of each function it ran."""

    def __init__(self) -> None:
        self.names: list[str] = []

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        await trio.lowlevel.checkpoint()
        self.names.append(getattr(fn, "__name__", repr(fn)))
        return fn(*args)


async def test_a_big_files_chunks_go_to_work_sync_and_the_rest_stays(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    small, bulk = Recorder(), Recorder()
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "c.db")
    snapshot, eng = await backup(
        blobs, catalog, store, tmp_path / "src", run_sync=small, work_sync=bulk
    )
    # Every chunk of the big file was read, hashed and sealed by the worker...
    chunks_of_big = bulk.names.count("_next_with_id") - 1  # the last call finds the end
    assert chunks_of_big > 10
    assert sorted(set(bulk.names)) == ["_next_with_id", "seal"]
    assert bulk.names.count("seal") == chunks_of_big
    # ... and the small files' windows, the trees and the index blobs stayed inline.
    assert small.names.count("prepare_files") == 2
    assert "_next_with_id" not in small.names
    assert small.names.count("seal") == eng.stats.dirs + 1 + eng.stats.index_blobs
    out = tmp_path / "out"
    await restorer(blobs, store).run(snapshot, out)
    assert snapshot_of(out / "src") == snapshot_of(tmp_path / "src")


async def test_a_worker_thread_backs_up_what_inline_does(tmp_path: Path) -> None:
    _tree(tmp_path / "src")
    blobs, store = codec(), MemoryPackStore()
    snapshot, eng = await backup(
        blobs, Catalog(tmp_path / "c.db"), store, tmp_path / "src", work_sync=to_thread
    )
    assert eng.stats.bytes_read == eng.stats.bytes > BIG
    out = tmp_path / "out"
    await restorer(blobs, store).run(snapshot, out)
    assert snapshot_of(out / "src") == snapshot_of(tmp_path / "src")
