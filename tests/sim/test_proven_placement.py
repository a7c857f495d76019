"""An owner counts a share placed only once its holder proves it (issue 15, finding 3).

Droppers answer `ShareStored` to every share and keep nothing, as the
attackers that took over an owner's routing table did. They sit closest to
the pack id, where placement looks first. The owner's put must count only
shares honest peers proved, and fail, rather than report success, when too
few honest peers remain; a backup then fails in one line and records nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pbackup.base.offload import inline
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.transport import Remote
from p2pbackup.peer.owner import OwnerService
from p2pbackup.shares.holder import ShareHolder
from p2pbackup.shares.mesh_packs import PlacementFailed, Redundancy
from p2pbackup.shares.messages import NoShare, PutShare, ShareStored
from p2pbackup.shares.upkeep_messages import Audit, QueryShare
from p2pbackup.simulations.mesh import SimPeer
from p2pbackup.simulations.storage import StorageMesh
from p2pbackup.store import MemoryShareStore
from p2pbackup.wire.messages import Message
from tests.sim.helpers import (
    STORAGE_CONFIG,
    build_mesh,
    by_distance,
    equipped_mesh,
    holders,
    new_pack,
    owner_store,
)

KEYS = OwnerKeys.from_master(bytes(range(9, 41)))
EPOCH = 1_700_000_000.0


def make_dropper(sim_peer: SimPeer) -> None:
    """The peer says it stored every share, keeps none, and cannot answer an audit."""

    async def drop(remote: Remote, message: Message) -> Message:
        if isinstance(message, PutShare):
            return ShareStored()
        if isinstance(message, QueryShare):
            return NoShare()
        raise P2PBackupError("no such share or block held here")

    for kind in (PutShare, QueryShare, Audit):
        sim_peer.peer.add_handler(kind, drop)


async def test_droppers_closest_to_the_pack_are_not_counted(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 30, seed=11)
    data, pack_id = new_pack(mesh, 200_000)
    droppers = by_distance(mesh, pack_id)[:8]
    for sim_peer in droppers:
        make_dropper(sim_peer)
    receipt = await owner_store(mesh.peers[0]).put(pack_id, data)
    assert receipt.placed == 10
    held = holders(stores, pack_id)
    # Every counted share is held by an honest peer; none was left with a dropper.
    assert sorted(i for indices in held.values() for i in indices) == list(range(10))
    assert not {p.node_id for p in droppers} & set(held)
    assert await owner_store(mesh.peers[5]).get(pack_id) == data


async def test_too_few_honest_peers_fails_the_put_instead_of_reporting_it_placed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 12, seed=12)
    data, pack_id = new_pack(mesh, 100_000)
    for sim_peer in by_distance(mesh, pack_id)[:6]:  # 5 honest peers left, 7 needed
        make_dropper(sim_peer)
    with pytest.raises(PlacementFailed) as failed:
        await owner_store(mesh.peers[0]).put(pack_id, data)
    message = str(failed.value)
    assert "only 5 distinct peers took a share" in message and "7 needed" in message
    assert "6 said they stored one but could not prove it" in message
    assert "\n" not in message
    assert len(holders(stores, pack_id)) == 5


async def quiet(_: dict[str, Any]) -> None:
    return None


async def test_a_backup_the_mesh_cannot_prove_fails_and_records_no_snapshot(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    """The owner's whole backup path, in process over the simulated network: 13 of its
    19 storage peers drop what they get, so no pack reaches 7 proven shares."""
    mesh = await build_mesh(nursery, 20, seed=13)
    storage = StorageMesh(mesh, STORAGE_CONFIG)
    for sim_peer in mesh.peers[1:]:
        storage.equip(sim_peer)
    for sim_peer in random.Random(13).sample(mesh.peers[1:], 13):
        make_dropper(sim_peer)
    owner = OwnerService(
        KEYS,
        mesh.peers[0].peer.dht,
        tmp_path / "catalog.db",
        Redundancy(),
        run_sync=inline,
        now=lambda: EPOCH + trio.current_time(),
        random_bytes=random.Random(1).randbytes,
    )
    source = tmp_path / "data"
    source.mkdir()
    (source / "file.bin").write_bytes(random.Random(2).randbytes(300_000))
    with pytest.raises(P2PBackupError) as failed:
        await owner.backup({"paths": [str(source)]}, quiet)
    message = str(failed.value)
    assert "\n" not in message  # the CLI prints it as its one error line
    assert "could not prove it" in message and "7 needed" in message
    listed = await owner.snapshots({}, quiet)
    assert listed["snapshots"] == []
    assert owner.catalog.pack_ids() == set()
    owner.close()


def make_mute_prover(sim_peer: SimPeer, store: MemoryShareStore) -> None:
    """The peer keeps every share and answers every audit, but its `ShareStored`
    carries no proof of the block the put named (decision 0057)."""
    holder = ShareHolder(store, run_sync=inline)

    async def mute(remote: Remote, message: Message) -> Message:
        reply = await holder.handle(remote, message)
        return ShareStored() if isinstance(reply, ShareStored) else reply

    sim_peer.peer.add_handler(PutShare, mute)


async def test_a_stored_reply_without_its_proof_counts_as_a_failed_audit(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Whatever a later audit would say, a put whose reply does not prove the block it
    named is not counted, and its peer's standing starts over as after a failed audit."""
    mesh, stores = await equipped_mesh(nursery, 30, seed=14)
    data, pack_id = new_pack(mesh, 200_000)
    mute = by_distance(mesh, pack_id)[:4]
    for sim_peer in mute:
        make_mute_prover(sim_peer, stores[sim_peer.node_id])
    book = mesh.peers[0].peer.dht.peers
    failed: list[bytes] = []
    counted = book.failed_audit

    def failed_audit(node_id: bytes, now: float) -> None:
        failed.append(node_id)
        counted(node_id, now)

    book.failed_audit = failed_audit  # type: ignore[method-assign]
    receipt = await owner_store(mesh.peers[0]).put(pack_id, data)
    assert receipt.placed == 10
    assert sorted(failed) == sorted(p.node_id for p in mute)
    # The mute peers keep what they were sent; each of those shares went on to be
    # proven by another peer as well.
    held = holders(stores, pack_id)
    assert sum(len(indices) for indices in held.values()) == 10 + len(mute)


async def test_a_proven_placement_takes_one_exchange_per_share(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The audit rides in the put: no separate audit follows a put."""
    mesh, stores = await equipped_mesh(nursery, 20, seed=15)
    data, pack_id = new_pack(mesh, 200_000)
    seen: list[str] = []
    for sim_peer in mesh.peers[1:]:
        holder = ShareHolder(stores[sim_peer.node_id], run_sync=inline)

        async def counted(
            remote: Remote, message: Message, holder: ShareHolder = holder
        ) -> Message:
            seen.append(message.TYPE.value)
            return await holder.handle(remote, message)

        for kind in (PutShare, Audit):
            sim_peer.peer.add_handler(kind, counted)
    receipt = await owner_store(mesh.peers[0]).put(pack_id, data)
    assert receipt.placed == 10
    assert seen.count(PutShare.TYPE.value) == 10 and Audit.TYPE.value not in seen
