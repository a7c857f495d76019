"""The awkward tree through the real commands: `backup` of a symlink to its folder,
`ls` marking each kind as `ls -l` does, and `restore` giving every entry back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.cli.localmesh import LocalMesh
from tests.backup.fidelity_tree import IS_ROOT, built, stat_tree

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def mesh3(tmp_path: Path) -> Iterator[LocalMesh]:
    """Three peers; the owner's packs go to two of them, either one rebuilds them."""
    with LocalMesh(tmp_path / "mesh", 3, serve_args=("--rpc-timeout", "3s")) as mesh:
        mesh.cli_json(0, "init", "-k", "1", "-n", "2", "--happy", "2")
        mesh.start()
        mesh.wait_for_tables()
        yield mesh


def test_backup_ls_and_restore_keep_every_kind_of_entry(mesh3: LocalMesh, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    real, link, (_, acl) = built(tmp_path / "src")
    backup = mesh3.cli_json(0, "backup", str(link))
    assert backup["errors"] == []
    # d1/h1 h2, d2/h3, a-out/y, inc/x1 x2 plain, sparse.img, attrs.txt, and acl.txt
    assert backup["files"] == 9 + acl

    listed = mesh3.cli(0, "ls", "latest", "docs/specials", check=True).stdout
    kinds = {line.split()[-1].rsplit("/", 1)[-1]: line[0] for line in listed.splitlines()}
    assert kinds["fifo"] == "p" and kinds["sock"] == "s"
    if IS_ROOT:
        assert kinds["null"] == "c"

    out = tmp_path / "out"
    restored = mesh3.cli_json(0, "restore", "latest", "--target", str(out))
    assert restored["failures"] == []
    assert stat_tree(out / "docs") == stat_tree(real)


def test_names_that_are_not_utf8_go_through_every_command(mesh3: LocalMesh, tmp_path: Path) -> None:
    """A legacy-encoded name (Latin-1 here) is the backed-up folder, a file, a folder and
    a symlink's target: every command takes it, shows it escaped, and restores its
    bytes; listing it once ended the peer."""
    top = tmp_path / os.fsdecode(b"photos-\xff")
    folder = top / os.fsdecode(b"caf\xe9")
    folder.mkdir(parents=True)
    (folder / os.fsdecode(b"r\xe9sum\xe9.txt")).write_bytes(b"cv")
    (top / os.fsdecode(b"link\xfe")).symlink_to(os.fsdecode(b"caf\xe9"))
    assert mesh3.cli_json(0, "backup", str(top))["files"] == 1

    listed = mesh3.cli(0, "ls", "latest", check=True).stdout
    assert "photos-\\xff/caf\\xe9/r\\xe9sum\\xe9.txt" in listed
    assert "photos-\\xff/link\\xfe -> caf\\xe9" in listed
    paths = {e["path"] for e in mesh3.cli_json(0, "ls", "latest")["entries"]}
    assert os.fsdecode(b"photos-\xff/caf\xe9/r\xe9sum\xe9.txt") in paths

    out = tmp_path / "out"
    chosen = os.fsdecode(b"photos-\xff/caf\xe9/*")
    mesh3.cli_json(0, "restore", "latest", "--target", str(out), "--include", chosen)
    restored = out / os.fsdecode(b"photos-\xff") / os.fsdecode(b"caf\xe9")
    assert (restored / os.fsdecode(b"r\xe9sum\xe9.txt")).read_bytes() == b"cv"
    assert mesh3.peers[0].alive
