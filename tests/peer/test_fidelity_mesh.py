"""The awkward tree through the real commands: `backup` of a symlink to its folder,
`ls` marking each kind as `ls -l` does, and `restore` giving every entry back."""

from __future__ import annotations

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
