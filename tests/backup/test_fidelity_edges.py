"""The edges of what a snapshot keeps: attributes that cannot be read, old-format
folder lists, and hard links that must never lead a restore outside its target."""

from __future__ import annotations

import errno
import os
import random
import stat
from pathlib import Path
from typing import Any

import cbor2
import pytest

from p2pbackup.backup import walk
from p2pbackup.backup.catalog import Catalog
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fs import backup, build_tree, codec, read_index, restorer, walk_snapshot, write


def _failing(code: int, real: Any, only: bytes) -> Any:
    """`real`, except that it fails with `code` for paths ending in `only`."""

    def call(path: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fsencode(path).endswith(only):
            raise OSError(code, os.strerror(code))
        return real(path, *args, **kwargs)

    return call


@pytest.mark.parametrize(
    ("code", "listed"), [(errno.ENOTSUP, False), (errno.EACCES, True), (errno.EIO, True)]
)
async def test_attributes_that_cannot_be_listed_are_listed_or_ignored_never_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, listed: bool
) -> None:
    """A file system without attributes has none; any other failure to read them is
    listed with the path, and the file is saved all the same."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "odd.txt", b"odd")
    write(src / "fine.txt", b"fine")
    monkeypatch.setattr(os, "listxattr", _failing(code, os.listxattr, b"odd.txt"))
    blobs, store = codec(), MemoryPackStore()
    snapshot, eng = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    assert eng.stats.files == 2
    expected = [(str(src / "odd.txt"), f"extended attributes not read: {os.strerror(code)}")]
    assert eng.stats.errors == (expected if listed else [])
    stats = await restorer(blobs, store).run(snapshot, tmp_path / "out")
    assert (tmp_path / "out/src/odd.txt").read_bytes() == b"odd" and stats.failures == []


def test_one_attribute_that_cannot_be_read_leaves_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    names = ["user.gone", "user.broken", "user.a"]
    values = {"user.a": b"1", "user.big": b"x" * (64 * 1024 + 1)}

    def getxattr(_: Any, name: bytes, **__: Any) -> bytes:
        if name == b"user.gone":
            raise OSError(errno.ENODATA, "gone")  # removed since the listing: not there
        if name == b"user.broken":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return values[os.fsdecode(name)]

    monkeypatch.setattr(os, "listxattr", lambda *_, **__: names)
    monkeypatch.setattr(os, "getxattr", getxattr)
    found, problem = walk.read_xattrs(os.fsencode(path))
    assert found == ((b"user.a", b"1"),)
    assert problem == f"extended attribute user.broken not read: {os.strerror(errno.EIO)}"
    monkeypatch.setattr(os, "listxattr", lambda *_, **__: ["user.big"])
    assert walk.read_xattrs(os.fsencode(path)) == (
        (),
        "extended attribute user.big not kept: over the size limits",
    )


async def test_a_tree_with_nothing_new_is_saved_as_version_1_and_restored(
    tmp_path: Path,
) -> None:
    """Folders with nothing of version 2 (the ordinary case) keep the old format, so an
    upgraded peer's first backup dedups against its older snapshots."""
    src = tmp_path / "src"
    build_tree(src, random.Random(3))
    blobs, store = codec(), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    reader = await read_index(blobs, store, snapshot)
    _, trees = await walk_snapshot(reader, snapshot.tree)
    versions = {cbor2.loads(await reader.blob(tree_id))["v"] for tree_id in trees.values()}
    assert versions == {1}
    stats = await restorer(blobs, store).run(snapshot, tmp_path / "out")
    assert stats.failures == [] and stats.files_restored == 9


async def test_hard_linked_symlinks_stay_links_and_lead_nowhere(tmp_path: Path) -> None:
    """A group whose first path is a symlink to a file outside: its other paths are
    linked to the symlink itself, never to what it points at."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not to be touched")
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(outside, src / "a-link")
    os.link(src / "a-link", src / "b-same", follow_symlinks=False)
    blobs, store = codec(), MemoryPackStore()
    snapshot, eng = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    assert eng.stats.errors == []
    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert stats.failures == [] and stats.symlinks == 2
    first, second = os.lstat(out / "src/a-link"), os.lstat(out / "src/b-same")
    assert os.path.islink(out / "src/b-same") and first.st_ino == second.st_ino
    assert os.stat(outside).st_nlink == 1
    assert outside.read_bytes() == b"not to be touched"


async def test_links_whose_first_path_failed_are_listed_not_restored(tmp_path: Path) -> None:
    """The group's first path cannot be made (a folder stands where it goes): its
    links are listed with the reason, not made to something else."""
    src = tmp_path / "src"
    src.mkdir()
    write(src / "a", b"data")
    os.link(src / "a", src / "b")
    blobs, store = codec(), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    out = tmp_path / "out"
    (out / "src" / "a").mkdir(parents=True)
    stats = await restorer(blobs, store).run(snapshot, out)
    reasons = dict(stats.failures)
    assert reasons[str(out / "src/b")] == f"hard link to {out / 'src/a'}, not restored"
    assert not os.path.lexists(out / "src/b")
    assert stats.files_failed == 2


@pytest.mark.timeout(60)  # the failure this guards against is a restore that never ends
async def test_a_fifo_left_where_a_file_goes_is_replaced_not_waited_on(tmp_path: Path) -> None:
    """A restore over an earlier one, where a FIFO has since become a file: opening
    the FIFO to write would wait for a reader forever."""
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "p")
    blobs, store = codec(), MemoryPackStore()
    catalog = Catalog(tmp_path / "c.db")
    first, _ = await backup(blobs, catalog, store, src)
    os.unlink(src / "p")
    write(src / "p", b"a file now")
    second, _ = await backup(blobs, catalog, store, src)
    out = tmp_path / "out"
    assert (await restorer(blobs, store).run(first, out)).failures == []
    assert stat.S_ISFIFO(os.lstat(out / "src/p").st_mode)
    stats = await restorer(blobs, store).run(second, out)
    assert stats.failures == [] and stats.files_restored == 1
    assert (out / "src/p").read_bytes() == b"a file now"
