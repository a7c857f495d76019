"""Repair across sixteen real peer processes while the owner is away."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh
from tests.peer.trees import random_files

pytestmark = pytest.mark.timeout(300)
PEERS = 16


def _running_mesh(root: Path, size: int, serve: tuple[str, ...]) -> Iterator[LocalMesh]:
    """A mesh whose peers all know each other; every process stops at the end."""
    with LocalMesh(root, size, serve_args=serve) as mesh:
        mesh.start()
        mesh.wait_for_tables()
        yield mesh


@pytest.fixture
def auditing_mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    """Holders audit every two seconds: they repair while the owner is away."""
    yield from _running_mesh(
        tmp_path / "mesh", PEERS, ("--rpc-timeout", "2s", "--audit-interval", "2s")
    )


@pytest.fixture
def idle_mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    """Maintenance loops idle for the test's length: the owner's commands do all the work.
    Fifteen peers: after 3 die, 11 storage peers besides the owner, room for n = 10."""
    yield from _running_mesh(
        tmp_path / "mesh", 15, ("--rpc-timeout", "2s", "--audit-interval", "1h")
    )


def test_holders_killed_while_the_owner_is_away_are_replaced_within_a_minute(
    tmp_path: Path, auditing_mesh: LocalMesh
) -> None:
    mesh = auditing_mesh
    source = random_files(tmp_path / "data", 6, 1_500_000, random.Random(5))
    owner = 0
    backup = mesh.cli_json(owner, "backup", str(source))
    assert backup["packs"] >= 2
    assert mesh.cli_json(owner, "check")["min_live_shares"] == 10

    mesh.stop_peer(owner, signal.SIGTERM)
    holders = sorted(
        (p for p in mesh.peers if p.alive),
        key=lambda p: -mesh.status(p.index)["shares_held"],
    )
    for peer in holders[:3]:  # the three busiest holders die
        mesh.stop_peer(peer.index, signal.SIGKILL)

    killed_at = time.monotonic()

    def repaired() -> bool:
        stats = [mesh.status(p.index)["maintenance"] for p in mesh.peers if p.alive]
        return sum(s["shares_rebuilt"] for s in stats) >= 3

    mesh.wait_for("three shares rebuilt by their holders", repaired, step=1.0)
    alive = next(p for p in mesh.peers if p.alive and p.index != owner)
    mesh.start_peer(owner, bootstrap=alive.listen)
    mesh.wait_for_tables(at_least=10, indices=[owner])
    # The owner's peer does no repair of its own: every pack back at n is the
    # holders' work. Within a minute of the kills, `check` must say so.
    reports: list[dict[str, Any]] = []

    def healthy() -> bool:
        reports.append(mesh.cli_json(owner, "check"))
        return reports[-1]["healthy"] == reports[-1]["packs"]

    try:
        took = mesh.wait_for("every pack healthy", healthy, step=2.0) - killed_at
    except TimeoutError as exc:  # say what the owner saw, and what the holders did
        upkeep = {p.index: mesh.status(p.index)["maintenance"] for p in mesh.peers if p.alive}
        raise AssertionError(f"{exc}\nlast check: {reports[-1:]}\nupkeep: {upkeep}") from exc
    assert took < 60, (took, reports[-1])
    assert reports[-1]["unrecoverable"] == 0
    assert reports[-1]["min_live_shares"] == 10


def test_owner_repair_then_forget_and_prune_frees_every_share(
    tmp_path: Path, idle_mesh: LocalMesh
) -> None:
    mesh = idle_mesh
    rng = random.Random(6)
    source = random_files(tmp_path / "data", 4, 1_200_000, rng)
    owner = 0
    first = mesh.cli_json(owner, "backup", str(source))
    # Files of 2 chunks each, all four in one big files' pack (6 MiB): with three of
    # them rewritten, the first backup's pack is a quarter used once it is forgotten.
    for i in range(3):
        (source / f"file{i}.bin").write_bytes(rng.randbytes(1_200_000))
    second = mesh.cli_json(owner, "backup", str(source))
    assert second["packs"] >= 1

    _three_holders_die_and_the_owner_repairs(mesh, owner)

    ids = [s["id"] for s in mesh.cli_json(owner, "snapshots")["snapshots"]]
    assert ids == [first["snapshot_id"], second["snapshot_id"]]
    live = [p.index for p in mesh.peers if p.alive and p.index != owner]
    _forget_the_first_and_prune(mesh, owner, ids[0], live, source, tmp_path / "out")

    # Forgetting what is left and pruning frees every share on every peer.
    ids = ids[1:]
    dry = mesh.cli_json(owner, "forget", *ids, "--prune", "--dry-run")
    assert dry["prune"]["packs_kept"] == 0 and dry["prune"]["packs_released"] > 0
    assert mesh.cli_json(owner, "snapshots")["snapshots"] != []
    gone = mesh.cli_json(owner, "forget", *ids, "--prune")
    assert gone["prune"]["packs_released"] > 0 and gone["prune"]["packs_kept"] == 0
    assert mesh.cli_json(owner, "snapshots")["snapshots"] == []
    held = [mesh.status(i) for i in live]
    assert sum(s["shares_held"] for s in held) == 0
    assert sum(s["bytes_used"] for s in held) == 0


def _three_holders_die_and_the_owner_repairs(mesh: LocalMesh, owner: int) -> None:
    holders = sorted(
        (p for p in mesh.peers if p.index != owner),
        key=lambda p: -mesh.status(p.index)["shares_held"],
    )
    for peer in holders[:3]:
        mesh.stop_peer(peer.index, signal.SIGKILL)
    before = mesh.cli_json(owner, "check")
    assert before["min_live_shares"] < 10 and before["unrecoverable"] == 0
    repaired = mesh.cli_json(owner, "repair")
    assert repaired["shares_rebuilt"] >= 3
    after = mesh.cli_json(owner, "check")
    assert after["min_live_shares"] == 10 and after["healthy"] == after["packs"]

    renewed = mesh.control(owner, "renew")
    assert renewed["packs_renewed"] == renewed["packs"] > 0


def _forget_the_first_and_prune(
    mesh: LocalMesh, owner: int, first: str, live: list[int], source: Path, out: Path
) -> None:
    """Forgetting the first snapshot repacks its mostly unused pack: file3, still in
    use, moves to a new pack, and the old pack is released."""
    used_before = sum(mesh.status(i)["bytes_used"] for i in live)
    pruned = mesh.cli_json(owner, "forget", first, "--prune")["prune"]
    assert pruned["packs_repacked"] >= 1 and pruned["packs_written"] >= 1, pruned
    assert 0 < pruned["bytes_repacked"] < 2_000_000
    assert pruned["packs_released"] >= pruned["packs_repacked"]
    used_after = sum(mesh.status(i)["bytes_used"] for i in live)
    assert used_after < used_before * 3 // 4, (used_before, used_after)
    health = mesh.cli_json(owner, "check", "--read-data")
    assert health["chunk_errors"] == [] and health["healthy"] == health["packs"]
    mesh.cli_json(owner, "restore", "latest", "--target", str(out))
    files, _, problems = compare_trees(source, out / "data")
    assert files == 4 and problems == []
    again = mesh.cli_json(owner, "prune")
    assert again["packs_repacked"] == again["packs_released"] == 0
