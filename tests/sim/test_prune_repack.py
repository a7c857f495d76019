"""Prune with repacking, through the owner's service on a simulated mesh: a second device
of the same owner finds the moved chunks, and a prune killed between its steps leaves
a state the next prune finishes."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pbackup.base.offload import inline
from p2pbackup.cli.demo import compare_trees
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from p2pbackup.peer.owner import OwnerService
from p2pbackup.peer.upkeep import Upkeep
from p2pbackup.shares.mesh_packs import Redundancy
from p2pbackup.simulations.runner import pin_trio_scheduler
from p2pbackup.simulations.storage import StorageMesh
from tests.sim.helpers import STORAGE_CONFIG, build_mesh

KEYS = OwnerKeys.from_master(bytes(range(7, 39)))
EPOCH = 1_700_000_000.0  # the owners' wall clock at virtual time 0
FILES = 10


async def quiet(_: dict[str, Any]) -> None:
    return None


async def owners(nursery: trio.Nursery, tmp_path: Path) -> tuple[StorageMesh, list[OwnerService]]:
    """Two devices of one owner (peers 0 and 1) over 18 storage peers."""
    mesh = await build_mesh(nursery, 20, seed=5)
    storage = StorageMesh(mesh, STORAGE_CONFIG)
    for sim_peer in mesh.peers[2:]:
        storage.equip(sim_peer)
    devices = [
        OwnerService(
            KEYS,
            mesh.peers[i].peer.dht,
            tmp_path / f"device{i}.db",
            Redundancy(),
            run_sync=inline,
            # Virtual wall clock, seeded nonces and snapshot ids: the seed names the run.
            now=lambda: EPOCH + trio.current_time(),
            random_bytes=random.Random(i).randbytes,
        )
        for i in range(2)
    ]
    return storage, devices


def tree(root: Path) -> Path:
    """Ten files of about two chunks each: two 6 MiB big files' packs of five files."""
    rng = random.Random(3)
    root.mkdir(parents=True)
    for i in range(FILES):
        (root / f"file{i}.bin").write_bytes(rng.randbytes(1_200_000))
    settle_times(root)
    return root


def settle_times(root: Path) -> None:
    """Fixed times for the tree and its files: their folder list is then the same bytes
    in every run, and so are the ids of the packs it lands in."""
    for path in [root, *root.iterdir()]:
        os.utime(path, (EPOCH - 3600, EPOCH - 3600))


async def two_snapshots(device: OwnerService, source: Path) -> list[str]:
    await device.backup({"paths": [str(source)]}, quiet)
    rng = random.Random(4)
    for i in (0, 1, 3, 4, 5, 6, 8, 9):  # four of each five-file pack rewritten
        (source / f"file{i}.bin").write_bytes(rng.randbytes(1_200_000))
    settle_times(source)
    await device.backup({"paths": [str(source)]}, quiet)
    listed = await device.snapshots({}, quiet)
    return [s["id"] for s in listed["snapshots"]]


async def test_another_device_restores_and_dedups_after_a_repack(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    storage, (laptop, desktop) = await owners(nursery, tmp_path)
    source = tree(tmp_path / "data")
    ids = await two_snapshots(laptop, source)
    held_before = storage.held_bytes()

    forgot = await laptop.forget({"snapshots": [ids[0]], "prune": True}, quiet)
    pruned = forgot["prune"]
    assert pruned["packs_repacked"] == 2 and pruned["packs_written"] >= 1
    assert pruned["packs_released"] >= 2
    # Every holder is reachable here, so every share of every released pack is dropped
    # at once, and counted (concurrent releases once overwrote each other's counts).
    assert pruned["shares_dropped"] == 10 * pruned["packs_released"]
    assert storage.held_bytes() < held_before * 3 // 4

    # The desktop never saw the old locations: it reads the repack's index.
    await desktop.restore({"snapshot": "latest", "target": str(tmp_path / "out")}, quiet)
    files, _, problems = compare_trees(source, tmp_path / "out" / "data")
    assert files == FILES and problems == []
    again = await desktop.backup({"paths": [str(source)]}, quiet)
    assert again["chunks_new"] == 0 and again["bytes_sent"] == 0
    health = await desktop.check({"read_data": True}, quiet)
    assert health["chunk_errors"] == [] and health["unrecoverable"] == 0


@pytest.mark.parametrize("killed_at", ["reindex", "release"])
async def test_a_prune_killed_between_steps_is_finished_by_the_next(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    killed_at: str,
) -> None:
    storage, (laptop, _) = await owners(nursery, tmp_path)
    source = tree(tmp_path / "data")
    ids = await two_snapshots(laptop, source)
    await laptop.forget({"snapshots": [ids[0]]}, quiet)
    held_before = storage.held_bytes()

    async def killed(*_: Any) -> Any:
        raise P2PBackupError("killed")

    # Killed after the new packs are placed (before their index is published), or
    # after it is published (before any old pack is released).
    with monkeypatch.context() as patch:
        if killed_at == "reindex":
            patch.setattr(laptop.index, "reindex", killed)
        else:
            patch.setattr(Upkeep, "_release", killed)
        with pytest.raises(P2PBackupError):
            await laptop.prune({}, quiet)

    await laptop.restore({"snapshot": "latest", "target": str(tmp_path / "mid")}, quiet)
    assert compare_trees(source, tmp_path / "mid" / "data")[2] == []

    finished = await laptop.prune({}, quiet)
    assert finished["packs_released"] >= 2
    assert storage.held_bytes() < held_before * 3 // 4
    await laptop.restore({"snapshot": "latest", "target": str(tmp_path / "out")}, quiet)
    files, _, problems = compare_trees(source, tmp_path / "out" / "data")
    assert files == FILES and problems == []
    settled = await laptop.prune({}, quiet)
    assert settled["packs_repacked"] == settled["packs_released"] == 0


async def test_an_unreadable_index_blob_is_reported_and_the_rest_still_listed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    storage, (laptop, _) = await owners(nursery, tmp_path)
    source = tree(tmp_path / "data")
    await two_snapshots(laptop, source)
    state = await laptop.index.state()
    first_index = state.snapshots[0].index[0].pack_id  # lists the first backup's chunks
    for store in storage.live_stores():
        for info in store.list_shares():
            if info.pack_id == first_index:
                store.delete(first_index, info.idx, info.owner)

    health = await laptop.check({}, quiet)
    assert len(health["index_errors"]) == 1 and first_index.hex() in health["unrecoverable_packs"]
    # The latest snapshot's folder list is in its own index blob: it still lists.
    listed = await laptop.ls({"snapshot": "latest"}, quiet)
    paths = sorted(e["path"] for e in listed["entries"])
    assert paths == ["data", *sorted(f"data/file{i}.bin" for i in range(FILES))]


def _prune_run(folder: Path) -> tuple[list[tuple[float, Any, Any, str]], dict[str, Any]]:
    """The message trace of two backups and a repacking prune, and what the prune said."""

    async def main() -> tuple[list[tuple[float, Any, Any, str]], dict[str, Any]]:
        async with trio.open_nursery() as nursery:
            storage, (laptop, _) = await owners(nursery, folder)
            trace: list[tuple[float, Any, Any, str]] = []
            storage.mesh.network.trace = trace
            ids = await two_snapshots(laptop, tree(folder / "data"))
            forgot = await laptop.forget({"snapshots": [ids[0]], "prune": True}, quiet)
            nursery.cancel_scope.cancel()
        return trace, forgot

    folder.mkdir()
    pin_trio_scheduler(5)
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_prune_over_real_files_replays_from_its_seed(tmp_path: Path) -> None:
    first_trace, first = _prune_run(tmp_path / "a")
    second_trace, second = _prune_run(tmp_path / "b")
    assert len(first_trace) > 500 and first["prune"]["packs_repacked"] == 2
    assert first_trace == second_trace
    # The same snapshots and the same prune; only the folder backed up was named apart.
    for side in ("keep", "forget"):
        assert [(s["id"], s["time"]) for s in first[side]] == [
            (s["id"], s["time"]) for s in second[side]
        ]
    assert {k: v for k, v in first["prune"].items() if k != "seconds"} == {
        k: v for k, v in second["prune"].items() if k != "seconds"
    }
