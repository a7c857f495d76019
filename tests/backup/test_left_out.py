"""A backup's and a restore's account of what they did not do: an unreadable folder is
listed, a folder that cannot be made counts every entry under it, and a target that
cannot be written is an error, not "0 files"."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from p2pbackup.backup import restore_files, scan
from p2pbackup.backup.catalog import Catalog
from p2pbackup.codec.packstore import MemoryPackStore
from p2pbackup.errors import P2PBackupError
from tests.backup.fs import backed_up, backup, codec, restorer, write
from tests.mounts import read_only


def build(root: Path) -> None:
    for folder in ("keep", "lost/deeper"):
        (root / folder).mkdir(parents=True)
    write(root / "keep" / "a.txt", b"a" * 3000)
    write(root / "lost" / "b.txt", b"b" * 3000)
    write(root / "lost" / "deeper" / "c.txt", b"c" * 3000)
    (root / "lost" / "link").symlink_to("b.txt")


def refuse_folder(monkeypatch: pytest.MonkeyPatch, suffix: bytes) -> None:
    """Creating a folder whose path ends in `suffix` fails, as on a folder the user
    may not write in (tests run as root, where permissions refuse nothing)."""
    make_dir = restore_files._make_dir

    def refuse(path: bytes) -> None:
        if path.endswith(suffix):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        make_dir(path)

    monkeypatch.setattr(restore_files, "_make_dir", refuse)


async def test_a_folder_that_cannot_be_made_counts_every_entry_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs, store, snapshot = await backed_up(tmp_path, build)
    refuse_folder(monkeypatch, b"/lost")
    out = tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out)
    assert stats.files_restored == 1 and (out / "src" / "keep" / "a.txt").exists()
    # b.txt, deeper/c.txt: the files; b.txt, link, deeper, deeper/c.txt: the entries.
    assert stats.files_failed == 2
    assert stats.failures == [
        (str(out / "src" / "lost"), "Permission denied; the 4 entries under it are not restored")
    ]


async def test_a_subset_counts_only_the_included_entries_under_a_lost_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs, store, snapshot = await backed_up(tmp_path, build)
    refuse_folder(monkeypatch, b"/deeper")
    stats = await restorer(blobs, store).run(snapshot, tmp_path / "out", ("src/lost/deeper",))
    assert stats.files_restored == 0 and stats.files_failed == 1
    assert [reason for _, reason in stats.failures] == [
        "Permission denied; the 1 entry under it is not restored"
    ]


async def test_a_target_that_cannot_be_written_is_an_error_and_restores_nothing(
    tmp_path: Path,
) -> None:
    blobs, store, snapshot = await backed_up(tmp_path, build)
    target = tmp_path / "ro"
    with read_only(target):
        with pytest.raises(P2PBackupError) as raised:
            await restorer(blobs, store).run(snapshot, target)
        assert str(raised.value) == (
            f"cannot restore into {target}: read-only file system; nothing was restored"
        )
        with pytest.raises(P2PBackupError) as raised:
            await restorer(blobs, store).run(snapshot, target / "new")
        assert str(raised.value) == (
            f"cannot create the restore folder {target / 'new'}: read-only file system"
        )
        assert os.listdir(target) == []


async def test_a_folder_the_backup_cannot_read_is_listed_and_the_rest_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    build(src)
    list_directory = scan.list_directory

    def refuse_lost(path: bytes, excludes: object) -> object:
        if path.endswith(b"/lost"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return list_directory(path, excludes)  # type: ignore[arg-type]

    monkeypatch.setattr(scan, "list_directory", refuse_lost)
    blobs, store = codec(), MemoryPackStore()
    snapshot, engine = await backup(blobs, Catalog(tmp_path / "c.db"), store, src)
    assert engine.stats.errors == [(str(src / "lost"), "Permission denied")]
    assert engine.stats.files == 1
    restored = await restorer(blobs, store).run(snapshot, tmp_path / "out")
    assert restored.files_restored == 1 and restored.failures == []


async def test_a_target_that_cannot_be_made_names_it_and_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs, store, snapshot = await backed_up(tmp_path, build)

    def refuse(path: bytes, mode: int = 0o777, exist_ok: bool = False) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(os, "makedirs", refuse)
    target = tmp_path / "locked" / "new"
    with pytest.raises(P2PBackupError) as raised:
        await restorer(blobs, store).run(snapshot, target)
    assert str(raised.value) == f"cannot create the restore folder {target}: permission denied"
