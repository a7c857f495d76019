"""Scenario `partition`: the mesh splits in two for hours, then heals.

The owner stays online on one side; a second device of the same owner sits
on the other. Each backs up a snapshot while the halves cannot reach each
other, so each side's quorum holds a different snapshot index. After the
network heals, republishing and quorum reads must merge the two sets: no
snapshot written on either side is lost. Meanwhile restore availability
shows how much of the data the owner's side could reach.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.backup.snapshot import Snapshot
from p2pbackup.backup.snapshot_index import SnapshotIndex
from p2pbackup.errors import P2PBackupError
from p2pbackup.simulations.storage import virtual_now
from p2pbackup.simulations.storage_run import StorageScenario
from p2pbackup.simulations.world import HOUR, World, WorldParams


@dataclass(frozen=True)
class PartitionParams(WorldParams):
    days: float = 1.0
    at_hours: float = 4.0
    partition_hours: float = 6.0


def _snapshot(rng: random.Random, host: str) -> Snapshot:
    return Snapshot(
        snapshot_id=rng.randbytes(16),
        time=virtual_now(),
        host=host,
        paths=("/home",),
        tags=(),
        parent=None,
        tree=rng.randbytes(32),
        index=(),
        files=0,
        size=0,
    )


async def _publish(index: SnapshotIndex, snapshot: Snapshot) -> bool:
    try:
        await index.add(snapshot)
    except P2PBackupError:
        return False
    return True


async def drive(world: World, params: PartitionParams, rng: random.Random) -> dict[str, Any]:
    laptop = SnapshotIndex(world.owner.peer.dht, world.keys)
    before = _snapshot(rng, "laptop")
    wrote = {"before": await _publish(laptop, before)}
    await trio.sleep(params.at_hours * HOUR)
    peers = world.storage_peers()
    rng.shuffle(peers)
    other_side = peers[: len(peers) // 2]
    world.mesh.network.partition({p.address for p in other_side})
    world.note(f"partition: {len(other_side)} peers cut off from the owner")
    desktop = SnapshotIndex(rng.choice(other_side).peer.dht, world.keys)
    on_laptop, on_desktop = _snapshot(rng, "laptop"), _snapshot(rng, "desktop")
    await trio.sleep(HOUR)
    wrote["laptop"] = await _publish(laptop, on_laptop)
    wrote["desktop"] = await _publish(desktop, on_desktop)
    await trio.sleep_until(trio.current_time() + (params.partition_hours - 1) * HOUR)
    world.mesh.network.heal()
    world.note("partition healed")
    # Republishing runs every few hours: give it two rounds, then read by quorum.
    await trio.sleep(2 * world.mesh.dht.republish_interval + HOUR)
    listed = {s.snapshot_id for s in await laptop.list()}
    expected = {before.snapshot_id, on_laptop.snapshot_id, on_desktop.snapshot_id}
    return {
        "snapshots_written": sum(wrote.values()),
        "snapshots_listed_after_heal": len(listed & expected),
        "index_merged": expected <= listed,
    }


SCENARIO = StorageScenario(
    "partition",
    "the mesh splits for hours and heals: do snapshots written on both sides merge?",
    PartitionParams,
    salt=0x5917,
    drive=drive,
    owner_stays=True,
)
