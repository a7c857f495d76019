"""Issue 15, findings 1 and 2: identities ground close to a pack take nothing by claims.

The attackers are driven by the project's own protocol code: real peers with
identities ground (seeded keys tried until they land closer to the pack than
every holder), whose handlers are replaced as `simulate hostile` does. Before
decision 0021 a holder dropped its copy when a closer sibling proved its
index once, and handed its share (deleting its own) to any closer peer.
"""

from __future__ import annotations

import dataclasses
import random

import trio

from p2pbackup.base.ids import distance
from p2pbackup.shares.mesh_packs import Redundancy
from p2pbackup.simulations.hostile import grind, join_as, leak_from, steal_claims
from p2pbackup.simulations.storage import StorageMesh
from p2pbackup.store import StoredShare
from tests.sim.helpers import HOUR, STORAGE_CONFIG, placed

# Hourly rounds; vetting at its default (days): well beyond these runs.
CLAIMS = dataclasses.replace(STORAGE_CONFIG, audit_interval=HOUR)
RUN = 10 * HOUR  # ten audit intervals, inside the placed shares' 12 h lease


def held(
    storage: StorageMesh, pack_id: bytes, among: set[bytes] | None = None
) -> dict[bytes, set[int]]:
    """Who holds which shares of the pack now (live peers; only `among`, if given)."""
    up = {p.node_id for p in storage.mesh.live()}
    return {
        node_id: set(store.indices(pack_id))
        for node_id, store in storage.stores.items()
        if node_id in up and store.indices(pack_id) and (among is None or node_id in among)
    }


def closest_id(storage: StorageMesh, pack_id: bytes) -> bytes:
    return min((p.node_id for p in storage.mesh.peers), key=lambda i: distance(i, pack_id))


async def test_a_claim_stealer_closest_to_a_pack_erases_no_share(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 15, 3, CLAIMS)
    mesh = storage.mesh
    target = packs[0]
    before = {p: held(storage, p) for p in packs}
    (identity,) = grind(random.Random(1), target, closest_id(storage, target), 1)
    attacker = await join_as(mesh, identity, ("10.66.0.1", 4000), mesh.peers[1].address)
    stolen: list[int] = []
    leak = leak_from(storage.stores)

    def counted(pack_id: bytes, owner: bytes, asker: bytes) -> StoredShare | None:
        share = leak(pack_id, owner, asker)
        if share is not None and pack_id == target:
            stolen.append(share.index)
        return share

    steal_claims(attacker.peer, counted)
    await trio.sleep(RUN)
    assert len(set(stolen)) == 10  # every holder asked it and was told its own index
    for pack_id in packs:
        assert held(storage, pack_id) == before[pack_id]  # no honest share dropped
    assert sum(m.stats.duplicates_dropped for m in storage.maintainers.values()) == 0
    mesh.stop()


async def test_eight_ground_identities_capture_at_most_k_minus_one_shares(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    storage, packs = await placed(nursery, 16, 3, CLAIMS)
    mesh = storage.mesh
    target = packs[0]
    redundancy = Redundancy()
    honest = {p.node_id for p in mesh.peers}
    identities = grind(random.Random(2), target, closest_id(storage, target), 8)
    attackers = []
    for i, identity in enumerate(identities):  # one /24 of the attacker's own
        address = (f"10.66.0.{i + 1}", 4000)
        attackers.append(await join_as(mesh, identity, address, mesh.peers[1].address))
        storage.equip(attackers[-1])  # they store what they are given, as honest peers do
    await trio.sleep(RUN)
    ours = {a.node_id for a in attackers}
    for pack_id in packs:
        taken = sum(len(indices) for indices in held(storage, pack_id, ours).values())
        assert taken <= redundancy.k - 1, pack_id.hex()
    for attacker in attackers:  # they leave with whatever they took
        storage.crash(attacker)
    for pack_id in packs:
        left = set().union(*held(storage, pack_id, honest).values())
        assert len(left) == redundancy.n, pack_id.hex()
    mesh.stop()
