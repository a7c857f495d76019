"""Restoring part of a snapshot with include patterns."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from p2pbackup.errors import P2PBackupError
from tests.backup.fs import BASE_NS, backed_up, restorer, snapshot_of, write


def build(root: Path) -> None:
    for folder in ("docs/sub", "img/raw", "empty"):
        (root / folder).mkdir(parents=True)
    write(root / "docs" / "a.txt", b"a" * 3000)
    write(root / "docs" / "b.md", b"b" * 3000)
    write(root / "docs" / "sub" / "c.txt", b"c" * 3000)
    write(root / "img" / "x.png", b"x" * 30_000)
    write(root / "img" / "raw" / "y.raw", b"y" * 30_000)
    write(root / "top.txt", b"top")
    for i, path in enumerate((root / "docs" / "sub", root / "docs", root / "img", root)):
        stamp = BASE_NS + i
        os.utime(path, ns=(stamp, stamp))


@pytest.mark.parametrize(
    ("include", "expected"),
    [
        (("src/docs/a.txt",), {"src", "src/docs", "src/docs/a.txt"}),
        (
            ("src/img",),
            {"src", "src/img", "src/img/x.png", "src/img/raw", "src/img/raw/y.raw"},
        ),
        (
            ("*.txt",),
            {"src", "src/docs", "src/docs/sub", "src/top.txt", "src/docs/a.txt"}
            | {"src/docs/sub/c.txt"},
        ),
        (("src/docs/*.md", "src/top.txt"), {"src", "src/docs", "src/docs/b.md", "src/top.txt"}),
        (("src/empty",), {"src", "src/empty"}),
    ],
)
async def test_include_patterns(
    tmp_path: Path, include: tuple[str, ...], expected: set[str]
) -> None:
    blobs, store, snapshot = await backed_up(tmp_path, build)
    src, out = tmp_path / "src", tmp_path / "out"
    stats = await restorer(blobs, store).run(snapshot, out, include)
    assert stats.failures == []
    restored = snapshot_of(out)
    assert {k.decode() for k in restored} == expected  # no skeleton of empty folders
    original = {b"src/" + k: v for k, v in snapshot_of(src).items()}
    for path, record in restored.items():
        if path != b"src":
            assert record == original[path]  # content, mode and mtime, folders on the way too
    if expected:
        assert os.stat(out / "src").st_mtime_ns == os.stat(src).st_mtime_ns
    assert stats.files_restored == sum(1 for r in restored.values() if r[0] == "file")


async def test_an_include_that_matches_nothing_is_an_error_naming_the_top_paths(
    tmp_path: Path,
) -> None:
    # Patterns start with the backed-up folder's name: "docs/*" is the easy mistake.
    blobs, store, snapshot = await backed_up(tmp_path, build)
    out = tmp_path / "out"
    with pytest.raises(P2PBackupError) as raised:
        await restorer(blobs, store).run(snapshot, out, ("docs/*",))
    message = str(raised.value)
    assert f"no path in snapshot {snapshot.short_id} matches 'docs/*'" in message
    assert "paths start with the backed-up folder's name: src/..." in message
    assert not out.exists()  # the folder it made for nothing is gone


async def test_an_include_matching_nothing_beside_one_that_matches_is_listed(
    tmp_path: Path,
) -> None:
    blobs, store, snapshot = await backed_up(tmp_path, build)
    stats = await restorer(blobs, store).run(snapshot, tmp_path / "out", ("src/top.txt", "nope"))
    assert stats.files_restored == 1
    assert [path for path, _ in stats.failures] == ["--include 'nope'"]
    assert "matches nothing; paths start with" in stats.failures[0][1]
