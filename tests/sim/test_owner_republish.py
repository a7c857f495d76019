"""An owner heals its snapshot index after every replica of it restarted empty, and
lists what it published meanwhile."""

from __future__ import annotations

import trio
import trio.testing

from p2pbackup.backup.snapshot import Locator, Snapshot
from p2pbackup.backup.snapshot_index import SnapshotIndex
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.simulations.mesh import SimMesh, SimPeer
from tests.sim.helpers import KEYS, build_mesh


def _snapshot(i: int) -> Snapshot:
    return Snapshot(
        snapshot_id=bytes([i]) * 16,
        time=1_700_000_000.0 + i,
        host="laptop",
        paths=("/home/a",),
        tags=(),
        parent=None,
        tree=bytes([i]) * 32,
        index=(Locator(bytes([i]) * 20, 0, 100),),
        files=1,
        size=100,
    )


async def _published(
    nursery: trio.Nursery,
) -> tuple[SimMesh, SimPeer, SimPeer, SnapshotIndex, list[Snapshot]]:
    """A mesh, its owner and a reader with the owner's keys, the owner's index and the
    three snapshots published in it."""
    mesh = await build_mesh(nursery, 24, seed=25)
    owner, reader = mesh.peers[5], mesh.peers[6]
    index = SnapshotIndex(owner.peer.dht, KEYS)
    written = [_snapshot(i) for i in range(1, 4)]
    for snapshot in written:
        assert await index.add(snapshot) >= mesh.dht.write_quorum
    return mesh, owner, reader, index, written


async def test_the_owners_republish_heals_an_index_every_replica_lost(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, owner, reader, index, written = await _published(nursery)

    replicas = [p for p in mesh.peers if p.peer.dht.records.get(index.key) is not None]
    assert len(replicas) >= mesh.dht.write_quorum
    others = [p for p in replicas if p is not owner]
    if owner in replicas:  # a replica too: its held copy goes, what it signed stays
        owner.peer.dht.records = RecordStore()
    for replica in others:
        mesh.crash(replica)
    await trio.testing.wait_all_tasks_blocked()  # their listeners are closed
    bootstrap = next(p for p in mesh.live() if p not in replicas).address
    for replica in others:
        await mesh.restart(replica, bootstrap)
    assert not any(p.peer.dht.records.get(index.key) for p in mesh.peers)
    # The reader uses the owner's keys, as a new machine recovering from the phrase.
    assert await SnapshotIndex(reader.peer.dht, KEYS).list() == []

    await trio.sleep(2 * mesh.dht.republish_interval)
    assert await SnapshotIndex(reader.peer.dht, KEYS).list() == written


async def test_the_owner_lists_what_it_published_when_its_replicas_hold_none(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, _, reader, index, written = await _published(nursery)
    for peer in mesh.peers:  # every replica's copy gone; the owner's own kept
        peer.peer.dht.records = RecordStore()
    assert await SnapshotIndex(reader.peer.dht, KEYS).list() == []

    # Not "no snapshots": a backup made on that would start from nothing.
    assert await index.list() == written
    # And the mesh has it again, by quorum, for a recovering owner's first read.
    assert await SnapshotIndex(reader.peer.dht, KEYS).list() == written
