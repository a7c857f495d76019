"""The engine keeps at most `parallel_uploads` packs in flight, and a big file never
makes it hold more than a few packs' worth of data."""

from __future__ import annotations

import os
import weakref
from pathlib import Path

import trio

from p2pbackup.backup.blobs import BlobCodec, Pack, Packer
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.engine import BackupEngine
from p2pbackup.base.offload import to_thread
from p2pbackup.codec.chunker import KIB, MIB, ChunkParams
from p2pbackup.codec.packstore import MemoryPackStore, PackReceipt
from tests.backup.fs import KEYS, restorer

BIG_PARAMS = ChunkParams(min_size=16 * KIB, avg_size=64 * KIB, max_size=256 * KIB)
TARGET = 256 * KIB
PARALLEL = 3


class Alive:
    """Which packs are still referenced from anywhere (Pack is unhashable: no WeakSet)."""

    def __init__(self) -> None:
        self.refs: dict[int, weakref.ref[Pack]] = {}
        self.made = 0

    def add(self, pack: Pack) -> None:
        self.made += 1
        key = self.made
        self.refs[key] = weakref.ref(pack, lambda _: self.refs.pop(key))

    def __len__(self) -> int:
        return len(self.refs)


class CountingPacker(Packer):
    def __init__(self, target_size: int, alive: Alive) -> None:
        super().__init__(target_size)
        self.alive = alive

    def _finish(self) -> Pack:
        pack = super()._finish()
        self.alive.add(pack)
        return pack


class CountingCodec(BlobCodec):
    def __init__(self) -> None:
        super().__init__(KEYS, BIG_PARAMS, pack_target=TARGET)
        self.alive = Alive()
        self.packers: list[CountingPacker] = []

    def packer(self) -> Packer:
        packer = CountingPacker(self.pack_target, self.alive)
        self.packers.append(packer)
        return packer


class SlowStore(MemoryPackStore):
    """Takes a while per put and records what the engine holds meanwhile."""

    def __init__(self, codec: CountingCodec) -> None:
        super().__init__()
        self.codec = codec
        self.in_flight = 0
        self.max_in_flight = 0
        self.max_alive = 0
        self.max_pending = 0

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.max_alive = max(self.max_alive, len(self.codec.alive))
            pending = max(p.pending_bytes for p in self.codec.packers)
            self.max_pending = max(self.max_pending, pending)
            await trio.sleep(0.015)  # slower than the walk: uploads back up
            return await super().put(pack_id, data)
        finally:
            self.in_flight -= 1


async def test_big_file_keeps_few_packs_in_memory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    size = 40 * MIB
    with open(src / "big.bin", "wb") as handle:
        for _ in range(size // MIB):
            handle.write(os.urandom(MIB))
    blobs = CountingCodec()
    store = SlowStore(blobs)
    engine = BackupEngine(
        blobs, Catalog(tmp_path / "c.db"), store, run_sync=to_thread, parallel_uploads=PARALLEL
    )
    snapshot = await engine.run([src], host="h")
    assert engine.stats.bytes_read == size
    assert store.puts > 100
    assert store.max_in_flight == PARALLEL  # used, and never exceeded
    # In flight, plus at most the two packs one blob can finish while the walk waits.
    assert store.max_alive <= PARALLEL + 2
    assert 0 < store.max_pending < TARGET
    assert len(blobs.alive) == 0 and blobs.alive.made == store.puts  # nothing kept

    out = tmp_path / "out"
    stats = await restorer(blobs, store, run_sync=to_thread).run(snapshot, out)
    assert stats.failures == [] and stats.bytes == size
    with open(src / "big.bin", "rb") as a, open(out / "src" / "big.bin", "rb") as b:
        while chunk := a.read(MIB):
            assert b.read(MIB) == chunk
