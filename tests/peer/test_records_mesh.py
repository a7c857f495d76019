"""The snapshot index outlives restarts, over ten real peer processes on 127.0.0.1.

Every peer killed at once comes back with the records it held (they are on
disk); replicas that come back empty-handed are healed by the owner's
re-publish, and a new machine recovering from the phrase sees every snapshot.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh
from tests.peer.trees import make_tree

pytestmark = pytest.mark.timeout(300)
PEERS = 10
OWNER = 0
WRITE_QUORUM = 3


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    serve = ("--rpc-timeout", "3s", "--republish-interval", "3s")
    with LocalMesh(tmp_path / "mesh", PEERS, serve_args=serve) as local:
        local.start()
        local.wait_for_tables()
        yield local


def _files(home: Path, name: str) -> list[Path]:
    return [home / f"{name}{suffix}" for suffix in ("", "-wal", "-shm")]


def _restart(mesh: LocalMesh, indices: list[int], ports: dict[int, int]) -> None:
    """Start these peers again on their old ports, through a peer that is running."""
    for index in indices:
        running = [p for p in mesh.peers if p.alive]
        through = running[0].listen if running else None
        mesh.start_peer(index, bootstrap=through or False, port=ports[index], wait=True)
    mesh.wait_for_tables(at_least=PEERS // 2, indices=indices)


def _holders(mesh: LocalMesh) -> list[int]:
    return [p.index for p in mesh.peers if p.alive and mesh.status(p.index)["records_held"]]


def _identical(original: Path, copy: Path) -> None:
    files, _, problems = compare_trees(original, copy)
    assert files > 0 and problems == []


def test_the_snapshot_index_survives_a_whole_mesh_kill_and_replicas_lost(
    mesh: LocalMesh, tmp_path: Path
) -> None:
    tree = tmp_path / "source" / "tree"
    tree.mkdir(parents=True)
    make_tree(tree, files=40, big_bytes=2**20)
    mesh.cli_json(OWNER, "backup", str(tree), "--tag", "first")
    (tree / "added.txt").write_text("one more file")
    mesh.cli_json(OWNER, "backup", str(tree))
    ids = [s["id"] for s in mesh.cli_json(OWNER, "snapshots")["snapshots"]]
    assert len(ids) == 2
    ports = {p.index: int(str(p.listen).rsplit(":", 1)[1]) for p in mesh.peers}

    # Power cut: every peer dies at once. The owner forgets what it signed, so only
    # the replicas' own files can bring the index back.
    for peer in mesh.peers:
        mesh.stop_peer(peer.index, signal.SIGKILL)
    for path in _files(mesh.peers[OWNER].home, "own-records.sqlite3"):
        path.unlink(missing_ok=True)
    _restart(mesh, [p.index for p in mesh.peers], ports)
    assert [s["id"] for s in mesh.cli_json(OWNER, "snapshots")["snapshots"]] == ids
    restored = mesh.cli_json(OWNER, "restore", "latest", "--target", str(tmp_path / "after-kill"))
    assert restored["files_failed"] == 0
    _identical(tree, tmp_path / "after-kill" / "tree")

    # Every replica of the index dies and comes back without its records file.
    replicas = _holders(mesh)
    assert len(replicas) >= WRITE_QUORUM
    for index in replicas:
        mesh.stop_peer(index, signal.SIGKILL)
        for path in _files(mesh.peers[index].home, "records.sqlite3"):
            path.unlink(missing_ok=True)
    _restart(mesh, replicas, ports)
    mesh.wait_for(
        "the owner's re-publish reaching a write quorum",
        lambda: len(_holders(mesh)) >= WRITE_QUORUM,
    )

    phrase = mesh.peers[OWNER].recovery_phrase
    assert phrase is not None
    fresh = mesh.add_peer()
    mesh.cli(fresh.index, "init", "--recover", check=True, stdin=phrase)
    mesh.start_peer(fresh.index, bootstrap=mesh.peers[1].listen)
    mesh.wait_for_tables(at_least=PEERS // 2, indices=[fresh.index])
    assert [s["id"] for s in mesh.cli_json(fresh.index, "snapshots")["snapshots"]] == ids
    recovered = mesh.cli_json(
        fresh.index, "restore", "latest", "--target", str(tmp_path / "recovered")
    )
    assert recovered["files_failed"] == 0
    _identical(tree, tmp_path / "recovered" / "tree")
