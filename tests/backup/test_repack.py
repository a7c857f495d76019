"""Repacking on prune: used blobs of mostly unused packs move to new packs, the old packs
go, and every kept snapshot still restores byte for byte."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pbackup.backup.blob_reader import BlobReader, load_index
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.prune import pack_extents, plan_prune, used_chunks
from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.codec.packstore import MemoryPackStore
from p2pbackup.peer.upkeep import _rescue
from tests.backup.fs import backup, codec, engine, restorer, snapshot_of, write


def _tree(root: Path, count: int) -> None:
    rng = random.Random(11)
    root.mkdir(parents=True)
    for i in range(count):
        write(root / f"file{i:03}.bin", rng.randbytes(rng.randrange(3000, 9000)))


async def _used(blobs_reader: BlobReader, snapshot: Snapshot) -> set[bytes]:
    blobs_reader.index = await load_index(blobs_reader, snapshot.index)
    return await used_chunks(blobs_reader, [snapshot])


async def test_repacked_snapshot_restores_after_old_packs_are_gone(tmp_path: Path) -> None:
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    src = tmp_path / "src"
    _tree(src, 60)
    first, _ = await backup(blobs, catalog, store, src)
    for i in range(60):
        if i % 6:  # five in six files go: most packs become mostly unused
            (src / f"file{i:03}.bin").unlink()
    second, _ = await backup(blobs, catalog, store, src)
    stored_before = sum(len(data) for data in store.packs.values())

    # Prune as if `first` were forgotten.
    reader = BlobReader(blobs, store, {})
    used = await _used(reader, second)
    sizes = {pack_id: size for pack_id, _, _, size, _ in catalog.packs()}
    index_packs = {loc.pack_id for loc in second.index}
    plan = plan_prune(reader.index, used, index_packs, catalog.pack_ids(), sizes, 0.5)
    assert plan.repack and set(plan.repack) <= set(plan.release)

    async def sealed() -> AsyncIterator[tuple[bytes, bytes]]:
        for pack_id, items in plan.repack.items():
            data = await store.get(pack_id)
            for chunk_id, loc in items:
                yield chunk_id, data[loc.offset : loc.offset + loc.length]

    new_blobs = await engine(blobs, catalog, store).repack(sealed())
    assert new_blobs
    for pack_id in plan.release:
        del store.packs[pack_id]  # the holders drop the released packs
    catalog.release(plan.release)
    assert sum(len(data) for data in store.packs.values()) < stored_before // 2

    # The new blobs are read first: the old ones, still listing released packs, must not
    # win just by being read later.
    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(
        second, out, index_blobs=tuple(new_blobs) + second.index, released=frozenset(plan.release)
    )
    assert stats.files_failed == 0 and stats.files_restored == 10
    assert snapshot_of(out / "src") == snapshot_of(src)

    # The catalog knows where the moved chunks are now: nothing is sent again.
    third, eng = await backup(blobs, catalog, store, src)
    assert eng.stats.bytes_sent == 0 and eng.stats.chunks_new == 0
    assert third.tree == second.tree and first.tree != second.tree


@st.composite
def _packs(draw: st.DrawFn) -> tuple[dict[bytes, Locator], set[bytes], set[bytes]]:
    """An index over a few packs of back-to-back blobs, the used chunks, the index packs."""
    index: dict[bytes, Locator] = {}
    pack_count = draw(st.integers(1, 6))
    serial = 0
    for p in range(pack_count):
        pack_id = bytes([p]) * 20
        offset = 0
        for length in draw(st.lists(st.integers(1, 5000), min_size=1, max_size=8)):
            index[serial.to_bytes(32, "big")] = Locator(pack_id, offset, length)
            offset += length
            serial += 1
    used = set(draw(st.sets(st.sampled_from(sorted(index)))))
    index_packs = set(draw(st.sets(st.sampled_from([bytes([p]) * 20 for p in range(pack_count)]))))
    return index, used, index_packs


@settings(max_examples=200, deadline=None)
@given(_packs(), st.floats(0, 1))
def test_prune_plan_never_releases_a_used_blob_it_does_not_move(
    packs: tuple[dict[bytes, Locator], set[bytes], set[bytes]], below: float
) -> None:
    index, used, index_packs = packs
    known = {loc.pack_id for loc in index.values()}
    sizes = pack_extents(index)
    plan = plan_prune(index, used, index_packs, known, sizes, below)
    released = set(plan.release)
    assert set(plan.repack) <= released
    assert not released & index_packs
    for chunk_id in used:
        pack_id = index[chunk_id].pack_id
        if pack_id in released:
            assert (chunk_id, index[chunk_id]) in plan.repack[pack_id]
    for pack_id in known - released - index_packs:
        in_use = sum(loc.length for c, loc in index.items() if c in used and loc.pack_id == pack_id)
        assert in_use >= below * sizes[pack_id] and in_use > 0
    for pack_id, moved in plan.repack.items():
        assert sum(loc.length for _, loc in moved) < below * sizes[pack_id]
    assert plan.kept == len(known - released)


def test_a_used_chunk_only_a_forgotten_snapshot_indexes_keeps_that_blob() -> None:
    # Two devices sent chunk c at once; the kept snapshot's own index lacks it.
    pack, blob_a, blob_b = b"p" * 20, Locator(b"i" * 20, 0, 50), Locator(b"j" * 20, 0, 60)
    c, d = b"c" * 32, b"d" * 32
    index = {d: Locator(pack, 0, 10)}
    others = {blob_a: {d: Locator(pack, 0, 10)}, blob_b: {c: Locator(pack, 10, 10)}}
    assert _rescue(index, {c, d}, others) == [blob_b]
    assert index[c] == Locator(pack, 10, 10)
    assert _rescue(index, {c, d}, others) == []
