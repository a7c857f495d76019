"""A holder whose disk is smaller than the capacity it offers, as real peers over TCP.

Its shares live on a 20 MiB tmpfs while it offers the default 20 GiB: `status`
shows what it can really take, a backup bigger than that is told which peer
refused and why, the holder logs no traceback, and it goes on serving what it
holds.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh
from tests.mounts import tmpfs

pytestmark = pytest.mark.timeout(300)
DISK = 20 * 2**20
HOLDER = 1


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs, unmounted at the end; skipped where it cannot be mounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 20 MiB tmpfs needs root")
    with tmpfs(tmp_path / "small-disk", f"size={DISK}") as where:
        yield where


def _files(root: Path, count: int, size: int, seed: int) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(count):
        (root / f"f{i:02d}.bin").write_bytes(rng.randbytes(size))
    return root


def test_a_full_disk_is_reported_and_refused_cleanly(small_disk: Path, tmp_path: Path) -> None:
    with LocalMesh(tmp_path / "mesh", 4, serve_args=("--rpc-timeout", "3s")) as mesh:
        mesh.init_all()
        # The holder's share store lives on the small disk; it offers 20 GiB all the same.
        (mesh.peers[HOLDER].home / "shares").symlink_to(small_disk)
        mesh.start()
        mesh.wait_for_tables()
        holder_id = mesh.status(HOLDER)["node_id"]

        status = mesh.cli_json(HOLDER, "status")
        assert status["capacity"] == 20 * 2**30
        assert 0 < status["free"] <= DISK and status["disk_free"] <= DISK

        # Each pack needs all three other peers: a refusal fails the backup and says why.
        mesh.cli_json(0, "config", "set", "redundancy", "2-of-3")
        small = _files(tmp_path / "small", 4, 50_000, seed=1)
        mesh.cli_json(0, "backup", str(small))
        big = _files(tmp_path / "big", 10, 4 * 2**20, seed=2)
        failed = mesh.cli(0, "backup", str(big))
        print(failed.stderr, end="")
        assert failed.returncode == 1
        assert failed.stderr.count("\n") == 1
        assert f"1 peer refused shares: {holder_id[:6]} disk full" in failed.stderr

        log = (mesh.peers[HOLDER].home / "serve.log").read_text()
        assert "Traceback" not in log and "internal error" not in log
        assert not [p for p in small_disk.rglob("*") if p.name.endswith(".tmp")]
        assert mesh.cli_json(HOLDER, "status")["free"] < DISK // 4

        # It still serves what it holds: with another holder gone, the small backup
        # comes back from it and the last one.
        mesh.stop_peer(2, signal.SIGTERM)
        target = tmp_path / "out"
        restored = mesh.cli_json(0, "restore", "latest", "--target", str(target))
        assert restored["files_failed"] == 0
        files, _, problems = compare_trees(small, target / "small")
        assert files == 4 and problems == []
