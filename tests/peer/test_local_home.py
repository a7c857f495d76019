"""A home is its user's alone: whatever `init` and `serve` find in it, they leave its
folders 0700 and its files 0600, and what the peer creates there later (the catalog of
every path backed up, the share index, their SQLite side files, the state file, the
socket) is born so.

Through the real CLI, as a user meets it; nothing here needs root.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from p2pbackup.cli.localmesh import CLI, LocalMesh

pytestmark = pytest.mark.timeout(180)

# What a serving owner's home holds besides its keys.
CREATED_BY_SERVE = {
    "catalog.sqlite3",
    "catalog.sqlite3-wal",
    "catalog.sqlite3-shm",
    "index.sqlite3",
    "index.sqlite3-wal",
    "index.sqlite3-shm",
    "lock",
    "peer.json",
    "control.sock",
}


def _not_private(home: Path) -> list[str]:
    """Each path under `home` (itself included) that another user could read or enter,
    with its mode; symlinks are not ours to judge."""
    found = []
    for path in [home, *sorted(home.rglob("*"))]:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue  # a temp file the peer has renamed meanwhile
        if stat.S_ISLNK(info.st_mode):
            continue
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if stat.S_IMODE(info.st_mode) != wanted:
            found.append(f"{path.relative_to(home.parent)} {stat.S_IMODE(info.st_mode):o}")
    return found


def _open_up(home: Path) -> None:
    """The home as an older version, a copy or a careless umask left it: folders 0755,
    files 0644, and a folder of something else's beside the peer's files."""
    other = home / "old-notes"
    other.mkdir()
    (other / "paths.txt").write_text("/home/someone/taxes\n")
    for path in [home, *home.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert len(_not_private(home)) == 1 + len(list(home.rglob("*")))


def _umask_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    raise AssertionError(f"/proc/{pid}/status shows no umask")


def test_init_closes_a_home_folder_that_was_open_to_all(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _open_up(home)
    made = subprocess.run(
        [*CLI, "--home", str(home), "init", "--json"], capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr
    assert (home / "node.key").exists() and (home / "owner.key").exists()
    assert _not_private(home) == []


def test_a_fresh_home_stays_private_once_its_peer_creates_its_files(tmp_path: Path) -> None:
    with LocalMesh(tmp_path / "mesh", 1) as mesh:
        mesh.init_all()
        home = mesh.peers[0].home
        assert _not_private(home) == []
        mesh.start_peer(0, bootstrap=None)
        assert {path.name for path in home.rglob("*")} >= CREATED_BY_SERVE
        assert _not_private(home) == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the umask from /proc")
def test_serve_closes_a_home_that_was_opened_and_creates_only_private_files(
    tmp_path: Path,
) -> None:
    with LocalMesh(tmp_path / "mesh", 1) as mesh:
        mesh.init_all()
        home = mesh.peers[0].home
        _open_up(home)
        peer = mesh.start_peer(0, bootstrap=None)
        assert {path.name for path in home.rglob("*")} >= CREATED_BY_SERVE
        assert _not_private(home) == []
        # Files the peer and its engine processes make later (shares, their folders) too.
        assert peer.process is not None and _umask_of(peer.process.pid) == 0o077
