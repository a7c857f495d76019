"""The data phase of a restore: packs in flight bounded in bytes, written in order."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio

from p2pbackup.backup import restore
from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.restore_files import Halt, Write
from p2pbackup.backup.restore_open import Opened
from p2pbackup.base.offload import inline
from p2pbackup.codec.chunker import KIB, ChunkParams
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fs import KEYS, backup, restorer

PARAMS = ChunkParams(min_size=4 * KIB, avg_size=16 * KIB, max_size=64 * KIB)
TARGET = 64 * KIB
FILE_BYTES = 2 * 1024 * 1024  # about 32 packs
T = TypeVar("T")


class SlowStore(MemoryPackStore):
    """Each get takes a while, those asked earlier longer; counts what is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.max_in_flight = 0
        self.asked = 0

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.asked += 1
            # Packs asked earlier come later than those asked after them.
            await trio.sleep(max(0.001, 0.1 - 0.005 * self.asked))
            return await super().get(pack_id, size_hint)
        finally:
            self.in_flight -= 1


async def _backed_up(tmp_path: Path) -> tuple[BlobCodec, SlowStore, object]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(random.Random(44).randbytes(FILE_BYTES))
    blobs = BlobCodec(KEYS, PARAMS, pack_target=TARGET)
    store = SlowStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    return blobs, store, snapshot


@pytest.mark.parametrize("budget_packs", [1, 4])
async def test_packs_in_flight_stay_within_the_memory_budget(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, budget_packs: int
) -> None:
    blobs, store, snapshot = await _backed_up(tmp_path)
    assert len(store.packs) > 20
    engine = restorer(blobs, store, memory_budget=budget_packs * TARGET)
    stats = await engine.run(snapshot, tmp_path / "out")  # type: ignore[arg-type]
    assert stats.failures == [] and stats.bytes == FILE_BYTES
    # A pack's extent is a little under the target, so one more may fit; never many.
    assert 1 <= store.max_in_flight <= budget_packs + 1
    if budget_packs > 1:
        assert store.max_in_flight > 1  # the budget is used, not just respected
    restored = (tmp_path / "out" / "src" / "big.bin").read_bytes()
    assert restored == (tmp_path / "src" / "big.bin").read_bytes()


async def test_packs_are_written_in_the_order_the_file_needs_them(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs, store, snapshot = await _backed_up(tmp_path)
    starts: list[int] = []  # where each pack's first write lands in the file
    write_pack = restore.write_pack

    def recording(writes: list[Write], opened: list[Opened], halt: Halt) -> object:
        starts.append(min(offset for write in writes for offset, _, _ in write.pieces))
        return write_pack(writes, opened, halt)

    monkeypatch.setattr(restore, "write_pack", recording)
    engine = restorer(blobs, store, memory_budget=8 * TARGET)
    stats = await engine.run(snapshot, tmp_path / "out")  # type: ignore[arg-type]
    assert stats.failures == [] and stats.bytes == FILE_BYTES
    # Packs asked earlier came later than those asked after them, and the file still
    # grew front to back.
    assert len(starts) > 20
    assert starts == sorted(starts)


async def test_the_work_on_each_pack_goes_where_pack_sync_says(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The engine process walks folders inline and gives each pack's hash, opening and
    writes to a worker: every pack's work must go there, and nothing else; a pack is
    opened before the pack before it is written, beside it."""
    blobs, store, snapshot = await _backed_up(tmp_path)
    done: list[str] = []

    async def recorded(fn: Callable[..., T], *args: object) -> T:
        done.append(fn.__name__)
        return fn(*args)

    engine = restorer(blobs, store, run_sync=inline, pack_sync=recorded)
    stats = await engine.run(snapshot, tmp_path / "out")  # type: ignore[arg-type]
    assert stats.failures == [] and stats.bytes == FILE_BYTES
    assert set(done) == {"pack_is_sound", "open_pieces", "write_pack"}  # the walk: inline
    packs = done.count("write_pack")
    assert done.count("pack_is_sound") == done.count("open_pieces") == packs > 20
    # With several packs on their way, some pack's chunks are open before the one before
    # it is written: two openings with no write between them (strictly in turn, every
    # opening would be followed by its write). Where in the run that happens depends on
    # trio's scheduling, so the test asks only that it happens.
    steps = [step for step in done if step != "pack_is_sound"]
    assert any(a == b == "open_pieces" for a, b in itertools.pairwise(steps))
    restored = (tmp_path / "out" / "src" / "big.bin").read_bytes()
    assert restored == (tmp_path / "src" / "big.bin").read_bytes()
