"""A restore gives back every kind of entry a backup tool is trusted with.

Hard links (one inode with its links, within the restored tree and within a
subset), a sparse file, a FIFO, a unix socket, a device node, extended
attributes with an ACL among them, and a symlink to a folder named as the path
to back up: after a backup and a restore, `lstat` of every entry matches in
type, mode, size, mtime and link count, and its extended attributes match.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.backup.catalog import Catalog
from p2pbackup.backup.tree import EntryKind, Tree
from p2pbackup.codec.chunker import DEFAULT_PARAMS
from p2pbackup.codec.packstore import MemoryPackStore
from tests.backup.fidelity_tree import (
    IS_ROOT,
    SPARSE_SIZE,
    Built,
    built,
    sparse_content_matches,
    stat_tree,
)
from tests.backup.fs import backup, codec, read_index, restorer


@pytest.fixture
def tree(tmp_path: Path) -> Built:
    return built(tmp_path)


async def test_every_entry_comes_back_as_it_was(tmp_path: Path) -> None:
    real, link, (user_xattrs, acl) = built(tmp_path, SPARSE_SIZE)
    blobs, store = codec(params=DEFAULT_PARAMS), MemoryPackStore()
    snapshot, eng = await backup(blobs, Catalog(tmp_path / "c.db"), store, link)
    assert eng.stats.errors == []
    # The symlink named as the path is saved as the folder, under the symlink's name.
    reader = await read_index(blobs, store, snapshot)
    (top,) = Tree.decode(await reader.blob(snapshot.tree)).entries
    assert (top.name, top.kind) == (b"docs", EntryKind.DIR)

    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert stats.failures == []
    before, after = stat_tree(real), stat_tree(out / "docs")
    assert after == before
    # The things most likely to go missing, stated outright.
    assert after["d1/h1"][4] == 3 and os.path.samefile(out / "docs/d1/h1", out / "docs/d2/h3")
    assert stat.S_ISFIFO(after["specials/fifo"][0]) and stat.S_ISSOCK(after["specials/sock"][0])
    assert stat.S_ISLNK(after["specials/link-inside"][0])
    assert after["sparse.img"][2] == SPARSE_SIZE and sparse_content_matches(
        out / "docs/sparse.img", SPARSE_SIZE
    )
    # Holes kept: the allocated blocks of the restored file within 10% of the original's.
    blocks = (real / "sparse.img").stat().st_blocks, (out / "docs/sparse.img").stat().st_blocks
    assert blocks[0] < SPARSE_SIZE // 512 // 100, blocks  # the original is sparse
    assert abs(blocks[1] - blocks[0]) <= blocks[0] / 10, blocks
    if IS_ROOT:
        assert stat.S_ISCHR(after["specials/null"][0]) and after["specials/null"][5] == 0x103
        assert after["specials/fifo"][4] == 2
        assert after["specials/fifo"][6] == {"trusted.kind": b"fifo"}
    if user_xattrs:
        assert after["attrs.txt"][6] == {"user.comment": b"kept", "user.empty": b""}
        assert after["d2"][6] == {"user.folder": b"\x00\xffbinary"}
    if acl:
        assert "system.posix_acl_access" in after["acl.txt"][6]
        assert "system.posix_acl_default" in after["d1"][6]
    missing = [
        what
        for what, there in (("root", IS_ROOT), ("user xattrs", user_xattrs), ("ACLs", acl))
        if not there
    ]
    if missing:
        pytest.skip(f"checked all but what needs {', '.join(missing)}, which this host lacks")


async def test_a_subset_links_what_it_includes(tmp_path: Path, tree: Built) -> None:
    """The first path of a link group lies outside the subset: the first included path
    holds the data, and the other included one is linked to it."""
    real, link, _ = tree
    blobs, store = codec(params=DEFAULT_PARAMS), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, link)
    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out, ["docs/inc", "docs/d2"])
    assert stats.failures == []
    assert sorted(os.listdir(out / "docs")) == ["d2", "inc"]
    x1, x2, h3 = (os.lstat(out / "docs" / p) for p in ("inc/x1", "inc/x2", "d2/h3"))
    assert (x1.st_nlink, x1.st_ino) == (2, x2.st_ino)
    assert h3.st_nlink == 1  # its group's other paths are not in the subset
    assert (out / "docs/inc/x2").read_bytes() == b"partly outside"
    assert stat.S_IMODE(x1.st_mode) == 0o604
    assert x1.st_mtime_ns == os.lstat(real / "inc/x1").st_mtime_ns
    assert stats.files_restored == 4  # x1, x2, plain and h3


@pytest.mark.skipif(not IS_ROOT, reason="making a device node to back up needs root")
async def test_a_device_restored_without_root_is_listed_not_restored(
    tmp_path: Path, tree: Built
) -> None:
    _, link, _ = tree
    blobs, store = codec(params=DEFAULT_PARAMS), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, link)
    out = tmp_path / "out"
    stats = await restorer(blobs, store, devices=False).run(snapshot, out, ["docs/specials"])
    assert stats.failures == [(str(out / "docs/specials/null"), "device nodes need root")]
    assert sorted(os.listdir(out / "docs/specials")) == [
        "fifo",
        "fifo-link",
        "link-inside",
        "sock",
    ]


async def test_an_unsupported_attribute_makes_a_listed_partial_restore(
    tmp_path: Path, tree: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A target that refuses extended attributes: the files are restored, and each
    whose attributes could not be set is listed with the reason."""
    _, link, (user_xattrs, _) = tree
    if not user_xattrs:
        pytest.skip("this file system keeps no user.* attributes to restore")
    blobs, store = codec(params=DEFAULT_PARAMS), MemoryPackStore()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "c.db"), store, link)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))

    monkeypatch.setattr(os, "setxattr", refuse)
    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out, ["docs/attrs.txt", "docs/d2"])
    reasons = dict(stats.failures)
    assert reasons[str(out / "docs/attrs.txt")] == (
        "restored, but extended attributes user.comment, user.empty not set: "
        + os.strerror(errno.ENOTSUP)
    )
    assert reasons[str(out / "docs/d2")].startswith("extended attributes user.folder not set")
    assert (out / "docs/attrs.txt").read_bytes() == b"with attributes"
    assert stat.S_IMODE(os.lstat(out / "docs/attrs.txt").st_mode) == 0o400
