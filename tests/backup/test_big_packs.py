"""A big file's chunks fill bigger packs than small files' and trees', and the bytes of
packs on their way stay about what `parallel_uploads` small packs would hold."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from p2pbackup.backup.blobs import BlobCodec
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.scan import SMALL_FILE, file_state
from p2pbackup.backup.walk import stat_root
from p2pbackup.base.ids import PACK_ID_BYTES
from p2pbackup.codec.descriptor import MAX_DESCRIPTOR_BYTES
from p2pbackup.codec.packs import BIG_FILE_TARGET, DEFAULT_TARGET
from p2pbackup.codec.packstore import MemoryPackStore, PackReceipt
from p2pbackup.net.connection_loop import encode_checked
from p2pbackup.shares.messages import MAX_SHARE_BYTES, PutShare
from p2pbackup.wire.frames import DEFAULT_MAX_FRAME
from p2pbackup.wire.messages import decode_message
from tests.backup.fs import KEYS, PARAMS, backup, restorer

SMALL = 64 * 1024
BIG = SMALL * 3 // 2  # as 6 MiB to 4 MiB
PARALLEL = 4


class WatchingStore(MemoryPackStore):
    """Takes a while per put and records the bytes of the packs on their way."""

    def __init__(self) -> None:
        super().__init__()
        self.on_way = 0
        self.most_on_way = 0
        self.most_puts = 0
        self.puts_now = 0
        self.big_now = 0
        self.most_big = 0  # packs past the small target at once

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        self.on_way += len(data)
        self.puts_now += 1
        self.most_on_way = max(self.most_on_way, self.on_way)
        self.most_puts = max(self.most_puts, self.puts_now)
        big = len(data) > SMALL
        self.big_now += big
        self.most_big = max(self.most_big, self.big_now)
        try:
            await trio.sleep(0.01)  # slower than the walk: uploads back up
            return await super().put(pack_id, data)
        finally:
            self.on_way -= len(data)
            self.puts_now -= 1
            self.big_now -= big


def _tree(root: Path) -> None:
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(3 * SMALL_FILE))
    (root / "small.txt").write_bytes(os.urandom(40 * 1024))


async def test_a_big_files_chunks_go_to_bigger_packs(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    blobs = BlobCodec(KEYS, PARAMS, pack_target=SMALL, big_pack_target=BIG)
    store = WatchingStore()
    catalog = Catalog(tmp_path / "c.db")
    snapshot, _ = await backup(blobs, catalog, store, src, parallel_uploads=PARALLEL)

    sizes = {pack_id: len(data) for pack_id, data in store.packs.items()}
    big_file = _file_chunks(catalog, src / "big.bin")
    small_file = _file_chunks(catalog, src / "small.txt")
    big_packs = {_pack_of(catalog, cid) for cid in big_file}
    small_packs = {_pack_of(catalog, cid) for cid in small_file}
    assert big_packs.isdisjoint(small_packs)
    # Every big-file pack but the last is filled past the small target.
    assert sorted(sizes[p] > SMALL for p in big_packs).count(False) <= 1
    assert all(sizes[p] <= BIG for p in big_packs)
    assert all(sizes[p] <= SMALL for p in small_packs)
    assert len(big_packs) <= 3 * SMALL_FILE // BIG + 2

    # Three big packs at once: one goes while fewer bytes than four small packs' are
    # on their way.
    assert store.most_on_way < PARALLEL * SMALL + BIG
    assert store.most_big == 3

    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert stats.failures == []
    for name in ("big.bin", "small.txt"):
        assert (out / "src" / name).read_bytes() == (src / name).read_bytes()


async def test_small_packs_still_go_parallel_uploads_at_a_time(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(60):
        (src / f"f{i}").write_bytes(os.urandom(20 * 1024))
    blobs = BlobCodec(KEYS, PARAMS, pack_target=SMALL, big_pack_target=BIG)
    store = WatchingStore()
    await backup(blobs, Catalog(tmp_path / "c.db"), store, src, parallel_uploads=PARALLEL)
    assert store.most_puts == PARALLEL
    assert max(len(data) for data in store.packs.values()) <= SMALL


def test_the_big_target_is_the_small_one_for_a_codec_given_its_own() -> None:
    assert BlobCodec(KEYS).big_pack_target == BIG_FILE_TARGET
    assert BlobCodec(KEYS, pack_target=SMALL).big_pack_target == SMALL


def test_a_big_pack_fits_one_share_of_one_of_n() -> None:
    # A pack of 1-of-n is one share, and `repair --reencode` may make any pack one.
    assert DEFAULT_TARGET < BIG_FILE_TARGET <= MAX_SHARE_BYTES
    put = PutShare(bytes(PACK_ID_BYTES), 0, bytes(MAX_DESCRIPTOR_BYTES), bytes(BIG_FILE_TARGET), 7)
    payload = encode_checked(1, put, DEFAULT_MAX_FRAME)
    assert decode_message(payload) == (1, put)


def _file_chunks(catalog: Catalog, path: Path) -> list[bytes]:
    entry = stat_root(os.fsencode(path))
    chunks = catalog.file_chunks(entry.path, file_state(entry))
    assert chunks is not None
    return [cid for cid, _ in chunks]


def _pack_of(catalog: Catalog, chunk_id: bytes) -> bytes:
    where = catalog.locate(chunk_id)
    assert where is not None
    return where.pack_id
