"""A restore stopped halfway (Ctrl-C, the peer stopping) leaves no file that passes for
restored: a file spread over several packs is made at its full size while the folders
are, and until its last pack is written it holds zero-filled holes, so it is removed;
every file left behind is whole."""

from __future__ import annotations

import random
from pathlib import Path

import trio

from p2pbackup.backup.catalog import Catalog
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fs import backup, codec, restorer, snapshot_of, write

PACK_TARGET = 32 * 1024


class StallingStore(MemoryPackStore):
    """Serves `serve` packs, then hangs as a peer that stopped answering would."""

    def __init__(self, serve: int) -> None:
        super().__init__()
        self.serve = serve
        self.stalled = trio.Event()

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        if self.serve <= 0:
            self.stalled.set()
            await trio.sleep_forever()
        self.serve -= 1
        return await super().get(pack_id, size_hint)


async def test_a_stopped_restore_removes_the_files_it_began(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(3)
    for i in range(6):
        write(src / f"big{i}.bin", rng.randbytes(300_000))  # each over several packs
    write(src / "small.txt", b"whole in one pack")
    blobs, store = codec(PACK_TARGET), StallingStore(serve=10**9)
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    store.serve = len(store.packs) // 2  # the index, the trees, some data: then nothing

    out = tmp_path / "out"
    async with trio.open_nursery() as nursery:

        async def restore() -> None:
            await restorer(blobs, store, parallel_packs=1).run(snapshot, out)

        nursery.start_soon(restore)
        await store.stalled.wait()
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()

    before = snapshot_of(src)
    after = {k: v for k, v in snapshot_of(out / "src").items() if v[0] == "file"}
    assert len(after) < len(before)  # stopped before the end
    for path, record in after.items():
        assert record == before[path], path  # what is left is whole, mode and mtime too
