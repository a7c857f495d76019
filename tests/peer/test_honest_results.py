"""Real `p2pbackup` processes: every result is honest and every error one line.

Exit statuses (decision 0033): 0 all done, 1 an error (nothing or not everything
done), 2 a usage error, 3 partial (each entry left out listed). A failure is one
line on stderr, never a traceback, never a Python repr, and a restore that did
nothing never says "restored 0 files"."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.cli.localmesh import LocalMesh
from p2pbackup.errors import P2PBackupError
from tests.mounts import read_only

pytestmark = pytest.mark.timeout(180)
OWNER = 0


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    """Three peers; the owner needs two others (1-of-2 shares), so one backup is quick."""
    with LocalMesh(tmp_path_factory.mktemp("mesh"), 3, serve_args=("--rpc-timeout", "2s")) as m:
        m.cli(OWNER, "init", "-k", "1", "-n", "2", "--happy", "2", check=True)
        m.start()
        m.wait_for_tables()
        yield m


@pytest.fixture(scope="module")
def documents(mesh: LocalMesh, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backed-up folder: the snapshot's paths start with its name, `Documents/`."""
    tree = tmp_path_factory.mktemp("home") / "Documents"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a")
    (tree / "sub" / "b.txt").write_text("b")
    mesh.cli(OWNER, "backup", str(tree), check=True)
    return tree


def one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single line a failed command printed on stderr, once its exit status is checked."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    return result.stderr.removeprefix("error: ").rstrip("\n")


def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    idle = LocalMesh(tmp_path / "idle", 1)
    idle.init_all()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = idle.cli(0, "serve", "--listen", f"127.0.0.1:{port}", timeout=60)
    line = one_error_line(served, 1)
    assert line == f"cannot listen on 127.0.0.1:{port}: address already in use"


def test_restore_target_that_is_a_file(mesh: LocalMesh, documents: Path, tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    restored = mesh.cli(OWNER, "restore", "latest", "--target", str(target))
    assert one_error_line(restored, 1) == f"--target {target} is a file, not a folder"
    assert restored.stdout == ""
    assert target.read_text() == "not a folder"


def test_the_peer_names_a_target_that_is_not_a_folder(
    mesh: LocalMesh, documents: Path, tmp_path: Path
) -> None:
    # Straight to the control socket, past the command's own check: the peer's
    # NotADirectoryError comes back as the path and its reason, not an internal error.
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    with pytest.raises(P2PBackupError) as raised:
        mesh.control(OWNER, "restore", snapshot="latest", target=str(target), includes=[])
    assert str(raised.value) == f"{target}: not a directory"


def test_restore_under_a_read_only_parent(mesh: LocalMesh, documents: Path, tmp_path: Path) -> None:
    with read_only(tmp_path / "ro") as parent:
        restored = mesh.cli(OWNER, "restore", "latest", "--target", str(parent / "new"))
        line = one_error_line(restored, 1)
        assert line == f"cannot create the restore folder {parent / 'new'}: read-only file system"
        assert restored.stdout == ""


def test_restore_into_an_unwritable_folder_restores_nothing_and_fails(
    mesh: LocalMesh, documents: Path, tmp_path: Path
) -> None:
    with read_only(tmp_path / "ro") as target:
        restored = mesh.cli(OWNER, "restore", "latest", "--target", str(target))
        line = one_error_line(restored, 1)
        assert line == f"cannot restore into {target}: read-only file system; nothing was restored"
        assert "restored 0 files" not in restored.stdout + restored.stderr
        assert restored.stdout == ""


def test_an_include_that_matches_nothing_shows_the_snapshots_paths(
    mesh: LocalMesh, documents: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    restored = mesh.cli(OWNER, "restore", "latest", "--target", str(target), "--include", "a*")
    line = one_error_line(restored, 1)
    assert line.startswith("no path in snapshot ") and line.endswith(
        "matches 'a*'; paths start with the backed-up folder's name: Documents/..."
    )
    assert restored.stdout == ""
    assert not target.exists()


def test_an_include_beside_one_matching_nothing_is_a_partial_restore(
    mesh: LocalMesh, documents: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out"
    restored = mesh.cli(
        OWNER, "restore", "latest", "--target", str(target), "--include", "Documents/a.txt",
        "--include", "sub",
    )  # fmt: skip
    assert restored.returncode == 3
    assert "Traceback" not in restored.stderr
    assert restored.stderr.splitlines() == [
        "not restored: --include 'sub': matches nothing; "
        "paths start with the backed-up folder's name: Documents/...",
        "error: 1 entry not restored as saved; the rest are restored",
    ]
    assert (target / "Documents" / "a.txt").read_text() == "a"


def test_ls_of_a_path_the_snapshot_lacks(mesh: LocalMesh, documents: Path) -> None:
    listed = mesh.cli(OWNER, "ls", "latest", "Documents/nope")
    assert one_error_line(listed, 1).startswith("no path 'Documents/nope' in snapshot ")
    assert listed.stdout == ""


def test_backup_of_a_path_that_does_not_exist(mesh: LocalMesh, tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    backed = mesh.cli(OWNER, "backup", str(missing))
    assert one_error_line(backed, 1) == f"{missing} does not exist"
