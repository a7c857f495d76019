"""The read-ahead seals each new chunk once, and a file whose chunk it skipped is still
saved when the file that claimed the chunk could not be read."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.backup import scan
from p2pbackup.backup.blobs import BlobCodec, ChunkReader
from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.scan import Claims, Prepared, prepare_files
from p2pbackup.base.offload import to_thread
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fs import (
    KEYS,
    PACK_TARGET,
    PARAMS,
    backup,
    codec,
    restorer,
    snapshot_of,
    write,
)


class CountingCodec(BlobCodec):
    """Counts seals and opens; reading a path in `failing` breaks after its first chunk."""

    def __init__(self, failing: frozenset[bytes] = frozenset()) -> None:
        super().__init__(KEYS, PARAMS, pack_target=PACK_TARGET)
        self.seals = 0
        self.opens = 0
        self.failing = failing

    def seal(self, chunk_id: bytes, plain: bytes) -> bytes:
        self.seals += 1
        return super().seal(chunk_id, plain)

    def open_chunker(self, path: str | bytes) -> ChunkReader:
        self.opens += 1
        reader = super().open_chunker(path)
        if path in self.failing:
            self.failing = self.failing - {path}  # fails once; read again, it works
            return _BreaksAfterOne(reader)  # type: ignore[return-value]
        return reader


class _BreaksAfterOne:
    def __init__(self, reader: ChunkReader) -> None:
        self.reader = reader
        self.given = 0

    def next_chunk(self) -> bytes | None:
        if self.given:
            raise OSError(5, "Input/output error")
        self.given += 1
        return self.reader.next_chunk()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.reader, name)


def test_prepare_skips_what_an_earlier_file_claimed(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        write(tmp_path / name, b"same bytes " * 100)
    blobs = CountingCodec()
    paths = [bytes(tmp_path / n) for n in ("a", "b", "c")]
    claims: Claims = {}
    later = prepare_files(blobs, paths[2:], claims, [(0, 5)])  # a later window ran first
    first = prepare_files(blobs, paths[:2], claims, [(0, 1, 0), (0, 1, 1)])
    found = [first[paths[0]], first[paths[1]], later[paths[2]]]
    sealed = [p.chunks[0][2] for p in found if isinstance(p, Prepared)]
    assert [s is not None for s in sealed] == [True, False, True]
    assert blobs.seals == 2 and set(claims.values()) == {(0, 1, 0)}


async def test_duplicate_files_are_sealed_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for folder in range(6):
        (src / f"d{folder}").mkdir(parents=True)
        for i in range(5):
            write(src / f"d{folder}" / f"copy{i}.h", b"#define SAME 1\n" * 200)
            write(src / f"d{folder}" / f"own{i}.h", f"#define OWN_{folder}_{i}\n".encode() * 90)
    blobs = CountingCodec()
    store = MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    snapshot, eng = await backup(blobs, catalog, store, src, run_sync=to_thread)
    # 30 own files + 1 shared chunk + 8 trees; with worker threads a race may seal twice.
    assert eng.stats.chunks_new == 39
    assert blobs.seals <= eng.stats.chunks_new + 3 + eng.stats.index_blobs
    out = tmp_path / "out"
    await restorer(blobs, store).run(snapshot, out)
    assert snapshot_of(out / "src") == snapshot_of(src)
    catalog.close()


async def test_a_folder_walked_before_its_later_files_seals_in_walk_order(
    tmp_path: Path,
) -> None:
    """`lib/tcl-private/tcl.h` comes before `lib/tcl.h` in the walk, though its folder is
    listed after the window holding `lib/tcl.h`: the copy walked first seals the
    chunk, and no file is read twice."""
    src = tmp_path / "src"
    (src / "lib" / "tcl-private").mkdir(parents=True)
    for rel in ("lib/tcl-private/tcl.h", "lib/tcl.h", "other.h"):
        write(src / rel, b"#define TCL 8\n" * 50)  # one chunk
    write(src / "lib" / "tclDecls.h", b"#define DECLS\n" * 50)
    blobs = CountingCodec()
    store = MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    snapshot, eng = await backup(blobs, catalog, store, src)
    assert eng.stats.files == 4 and blobs.opens == 4
    assert eng.stats.chunks_new == 2 + 4  # two contents; three folders and the root
    out = tmp_path / "out"
    await restorer(blobs, store).run(snapshot, out)
    assert snapshot_of(out / "src") == snapshot_of(src)
    catalog.close()


async def test_a_file_whose_chunk_went_unsealed_is_read_again(tmp_path: Path) -> None:
    """`a` claims the chunk and then fails to read; `b`, with the same bytes, skipped
    sealing it and must not be saved as pointing at a chunk nobody packed."""
    src = tmp_path / "src"
    src.mkdir()
    content = b"shared content " * 1000  # more than one chunk
    write(src / "a", content)
    write(src / "b", content)
    blobs = CountingCodec(failing=frozenset({bytes(src / "a")}))
    store = MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    snapshot, eng = await backup(blobs, catalog, store, src)
    assert [path for path, _ in eng.stats.errors] == [str(src / "a")]
    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert stats.files_failed == 0
    assert (out / "src" / "b").read_bytes() == content
    assert not (out / "src" / "a").exists()
    catalog.close()


async def test_a_first_backup_still_dedups_once_its_claims_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first backup tells placed chunks from its claims, not the catalog. Once the
    claims are dropped for memory, it must ask the catalog again: a copy of a chunk
    placed earlier in the run is not packed a second time."""
    monkeypatch.setattr(scan, "MAX_CLAIMS", 3)
    src = tmp_path / "src"
    rng = random.Random(5)
    shared = rng.randbytes(1000)  # under the minimum chunk: one chunk per file
    for folder in range(12):
        (src / f"d{folder:02}").mkdir(parents=True)
        write(src / f"d{folder:02}" / "shared.h", shared)
        for i in range(4):
            write(src / f"d{folder:02}" / f"own{i}.h", rng.randbytes(1000))
        (src / f"d{folder:02}" / "empty").mkdir()  # the same empty tree in every folder
    blobs = codec(pack_target=4096)
    store = MemoryPackStore()
    catalog = Catalog(tmp_path / "catalog.db")
    snapshot, eng = await backup(blobs, catalog, store, src)
    # 48 own files, 1 shared file, 1 empty tree, 12 folder trees and the root's two.
    assert eng.stats.chunks_new == 48 + 1 + 1 + 12 + 2
    assert eng.stats.packs > 3  # packs were placed while the walk went on
    out = tmp_path / "out"
    await restorer(blobs, store).run(snapshot, out)
    assert snapshot_of(out / "src") == snapshot_of(src)
    catalog.close()
