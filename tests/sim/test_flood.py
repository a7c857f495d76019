"""Finding 3: two hundred identities take an owner's view of the mesh.

Hostile identities from two /24s (one provider's worth of addresses) each
introduce themselves to the owner once (a FIND_NODE: a PING introduces
nobody); forty of them, ground to be nearer the owner's index record than
every honest peer, also introduce themselves to every honest peer, and all of them
answer lookups with each other and acknowledge every record and share
without keeping it. The owner's routing table must hold at most the table
limit from each of their blocks; the owner's record must land on at least W
honest replicas; a backup must count only shares honest peers proved; and
once the attackers leave, the snapshot must still be found and restored.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import trio
import trio.testing

from p2pbackup.backup.snapshot_index import SnapshotIndex
from p2pbackup.base.offload import inline
from p2pbackup.cli.demo import compare_trees
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.records import value_record
from p2pbackup.peer.owner import OwnerService
from p2pbackup.shares.mesh_packs import Redundancy
from p2pbackup.simulations.mesh import SimMesh, SimPeer
from p2pbackup.simulations.storage import StorageMesh
from tests.sim.helpers import STORAGE_CONFIG, TEST_DHT
from tests.sim.sybils import HOSTILE, Sybils, ground, settled

HONEST = 60
NEAR_KEY = 40  # of the hostile ids, ground nearer the record's key than every honest peer
KEYS = OwnerKeys.from_master(bytes(range(21, 53)))
EPOCH = 1_700_000_000.0


async def flood(mesh: SimMesh, owner: SimPeer, sybils: Sybils) -> None:
    """Every hostile id pings the owner; those near the key ping every honest peer too."""
    pings = [(i, owner.address) for i in range(HOSTILE)]
    pings += [(i, p.address) for i in range(NEAR_KEY) for p in mesh if p is not owner]
    await sybils.ping_all(pings)
    await settled(mesh)


async def test_two_hundred_identities_neither_take_the_table_nor_hold_the_only_copies(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await SimMesh.create(nursery, 15, dht=TEST_DHT)
    await mesh.grow(HONEST)
    owner = mesh.peers[7]
    record = value_record(owner.peer.identity, b"snapshot-index", 1, b"every snapshot")
    sybils = Sybils(
        mesh, ground(random.Random(15), record.key, [p.node_id for p in mesh], NEAR_KEY)
    )
    await nursery.start(sybils.serve)
    await flood(mesh, owner, sybils)

    table = owner.peer.dht.table
    hostile = {c.node_id for c in sybils.contacts}
    per_block = Counter(owner.peer.dht.block_of(c) for c in table if c.node_id in hostile)
    assert per_block and max(per_block.values()) <= TEST_DHT.table_block_limit, per_block

    write = await owner.peer.dht.put(record)
    honest_holders = [p for p in mesh if p.peer.dht.records.get(record.key) is not None]
    assert len(honest_holders) >= TEST_DHT.write_quorum, (len(honest_holders), len(write.acks))

    sybils.leave()
    for reader in (owner, mesh.peers[30]):
        found = await reader.peer.dht.get(record.key)
        assert found is not None and found.value == b"every snapshot"


async def quiet(_: dict[str, Any]) -> None:
    return None


def device(sim_peer: SimPeer, catalog: Path, seed: int) -> OwnerService:
    return OwnerService(
        KEYS,
        sim_peer.peer.dht,
        catalog,
        Redundancy(),
        run_sync=inline,
        now=lambda: EPOCH + trio.current_time(),
        random_bytes=random.Random(seed).randbytes,
    )


async def test_a_backup_under_the_flood_is_proven_and_survives_the_attackers_leaving(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """The whole owner path: backed up while flooded, restored on a fresh device (nothing
    but the keys) after every attacker left, byte for byte."""
    mesh = await SimMesh.create(nursery, 16, dht=TEST_DHT)
    await mesh.grow(40)
    storage = StorageMesh(mesh, STORAGE_CONFIG)
    for sim_peer in mesh.peers[2:]:
        storage.equip(sim_peer)
    owner, other = mesh.peers[0], mesh.peers[1]
    key = SnapshotIndex(owner.peer.dht, KEYS).key
    sybils = Sybils(mesh, ground(random.Random(16), key, [p.node_id for p in mesh], NEAR_KEY))
    await nursery.start(sybils.serve)
    await flood(mesh, owner, sybils)

    source = tmp_path / "data"
    source.mkdir()
    rng = random.Random(17)
    for i in range(5):
        (source / f"file{i}.bin").write_bytes(rng.randbytes(700_000))
    laptop = device(owner, tmp_path / "laptop.db", 1)
    await laptop.backup({"paths": [str(source)]}, quiet)
    laptop.close()
    assert sybils.shares_taken > 0  # the attackers were offered shares and said "stored"
    holders: dict[bytes, set[bytes]] = {}
    for node_id, store in storage.stores.items():
        for info in store.list_shares():
            holders.setdefault(info.pack_id, set()).add(node_id)
    # Every pack the backup counted sits on at least `happy` honest peers that proved it.
    assert holders and all(len(h) >= Redundancy().happy for h in holders.values())

    sybils.leave()
    fresh = device(other, tmp_path / "fresh.db", 2)
    await fresh.restore({"snapshot": "latest", "target": str(tmp_path / "out")}, quiet)
    fresh.close()
    files, _, problems = compare_trees(source, tmp_path / "out" / "data")
    assert files == 5 and problems == []
