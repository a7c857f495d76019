"""The power goes in a home lab: twelve real peer processes SIGKILLed at once.

Started again on their homes, with no cleanup by hand, the peers rejoin; the
owner lists every snapshot it made and restores them byte-identical, and a new
machine with nothing but the recovery phrase does the same.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.backup.engine import RACY_SECONDS
from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh
from tests.peer.restarts import kill_all
from tests.peer.trees import wait_until_settled

pytestmark = pytest.mark.timeout(400)
PEERS = 12
OWNER = 0
# Headers of several kinds from the system (text, deep folders, symlinks), if present.
SYSTEM_PARTS = ("openssl", "X11", "GL", "arpa", "net", "netinet")


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    with LocalMesh(tmp_path / "mesh", PEERS, serve_args=("--rpc-timeout", "3s")) as started:
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


class SnapshotIndexLost(AssertionError):
    """The owner's snapshot list after the restart is not the one before it."""


# Only this one failure is expected, and strictly: once DHT records are kept on disk
# the test passes, and the mark must go.
@pytest.mark.xfail(
    strict=True,
    raises=SnapshotIndexLost,
    reason="the snapshot index is a DHT record its replicas hold in memory only",
)
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
    mesh.start()
    mesh.wait_for_tables()

    # The snapshot index lives in DHT records: it must have survived on the replicas.
    listed = [s["id"] for s in mesh.cli_json(OWNER, "snapshots")["snapshots"]]
    if listed != ids:
        raise SnapshotIndexLost(f"listed {listed}, made {ids}")
    restored = mesh.cli_json(OWNER, "restore", "latest", "--target", str(tmp_path / "out"))
    assert restored["files_failed"] == 0
    _identical(tree, tmp_path / "out" / "tree")

    # A new machine, the phrase alone.
    phrase = mesh.peers[OWNER].recovery_phrase
    assert phrase is not None
    fresh = mesh.add_peer()
    mesh.cli(fresh.index, "init", "--recover", check=True, stdin=phrase)
    mesh.start_peer(fresh.index, bootstrap=mesh.peers[1].listen)
    mesh.wait_for_tables(at_least=8, indices=[fresh.index])
    seen = mesh.cli_json(fresh.index, "snapshots")["snapshots"]
    assert [s["id"] for s in seen] == ids
    recovered = mesh.cli_json(
        fresh.index, "restore", "latest", "--target", str(tmp_path / "recovered")
    )
    assert recovered["files_failed"] == 0
    _identical(tree, tmp_path / "recovered" / "tree")
