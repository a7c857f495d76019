"""The power goes in a home lab: twelve real peer processes SIGKILLed at once.

Started again on their homes, with no cleanup by hand, the peers rejoin; the
owner lists every snapshot it made and restores them byte-identical. Then the
replicas of the snapshot index die and come back without their records file,
the owner's re-publish heals them, and a new machine with nothing but the
recovery phrase lists and restores everything.
"""

from __future__ import annotations

import random
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.backup.engine import RACY_SECONDS
from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh
from tests.peer.restarts import kill_all, recover_and_restore
from tests.peer.trees import wait_until_settled

pytestmark = pytest.mark.timeout(400)
PEERS = 12
OWNER = 0
WRITE_QUORUM = 3
# Headers of several kinds from the system (text, deep folders, symlinks), if present.
SYSTEM_PARTS = ("openssl", "X11", "GL", "arpa", "net", "netinet")


SERVE = ("--rpc-timeout", "3s", "--republish-interval", "3s")


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    with LocalMesh(tmp_path / "mesh", PEERS, serve_args=SERVE) as started:
        started.start()
        started.wait_for_tables()
        yield started


def _real_folder(root: Path) -> Path:
    """A few MB of varied files: system headers and an incompressible binary."""
    tree = root / "tree"
    tree.mkdir(parents=True)
    for part in SYSTEM_PARTS:
        source = Path("/usr/include") / part
        if source.is_dir():
            shutil.copytree(source, tree / "include" / part, symlinks=True)
    rng = random.Random(30)
    (tree / "blob.bin").write_bytes(rng.randbytes(3 * 2**20))
    (tree / "notes").mkdir()
    for i in range(40):
        (tree / "notes" / f"note{i}.txt").write_text(f"note {i}\n" * rng.randrange(1, 400))
    wait_until_settled(tree, RACY_SECONDS)
    return tree


def _identical(original: Path, copy: Path) -> None:
    files, _, problems = compare_trees(original, copy)
    assert files > 40
    assert problems == []


def _record_files(home: Path, name: str) -> list[Path]:
    return [home / f"{name}{suffix}" for suffix in ("", "-wal", "-shm")]


def _record_holders(mesh: LocalMesh) -> list[int]:
    return [p.index for p in mesh.peers if p.alive and mesh.status(p.index)["records_held"]]


def test_every_peer_killed_at_once_then_everything_is_still_there(
    mesh: LocalMesh, tmp_path: Path
) -> None:
    tree = _real_folder(tmp_path / "source")
    first = mesh.cli_json(OWNER, "backup", str(tree), "--tag", "first")
    assert first["errors"] == [] and first["bytes"] > 3 * 2**20
    (tree / "notes" / "after.txt").write_text("written between the two backups\n")
    mesh.cli_json(OWNER, "backup", str(tree))
    ids = [s["id"] for s in mesh.cli_json(OWNER, "snapshots")["snapshots"]]
    assert len(ids) == 2

    kill_all(mesh)
    for peer in mesh.peers:  # what the kill left behind, none of it cleaned by hand
        assert (peer.home / "peer.json").exists()
    # The owner also forgets what it signed: only the replicas' files can bring the
    # snapshot index back.
    for path in _record_files(mesh.peers[OWNER].home, "own-records.sqlite3"):
        path.unlink(missing_ok=True)
    mesh.start()
    mesh.wait_for_tables()
    listed = [s["id"] for s in mesh.cli_json(OWNER, "snapshots")["snapshots"]]
    assert listed == ids
    restored = mesh.cli_json(OWNER, "restore", "latest", "--target", str(tmp_path / "out"))
    assert restored["files_failed"] == 0
    _identical(tree, tmp_path / "out" / "tree")
    # A new machine, the phrase alone; then it goes, so only the owner can heal below.
    mesh.stop_peer(recover_and_restore(mesh, OWNER, tree, ids, tmp_path / "first-recovery"))

    # Every replica of the index dies and comes back without its records file; the
    # owner, which kept what its `snapshots` read, heals them by its re-publish.
    replicas = _record_holders(mesh)
    assert len(replicas) >= WRITE_QUORUM
    for index in replicas:
        mesh.stop_peer(index, signal.SIGKILL)
        for path in _record_files(mesh.peers[index].home, "records.sqlite3"):
            path.unlink(missing_ok=True)
    through = next(p.listen for p in mesh.peers if p.alive)
    for index in replicas:
        mesh.start_peer(index, bootstrap=through)
    mesh.wait_for_tables(at_least=PEERS // 2, indices=replicas)
    mesh.wait_for(
        "the owner's re-publish reaching a write quorum",
        lambda: len(_record_holders(mesh)) >= WRITE_QUORUM,
    )

    recover_and_restore(mesh, OWNER, tree, ids, tmp_path / "second-recovery")
