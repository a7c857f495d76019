"""Hostile identities cannot park records on a replica: budgets and closeness hold.

Ten identities of the mesh's own peers, driving the DHT's own calls, send a
replica 500 records of 2 MiB; a record is also sent for a key the replica is
far from. Virtual time and a seeded mesh: every run is this run.
"""

from __future__ import annotations

import trio
import trio.testing

from p2pbackup.base.ids import distance
from p2pbackup.dht.messages import Stored, StoreRecord
from p2pbackup.dht.record_store import OWNER_BUDGET, TOTAL_BUDGET, record_bytes
from p2pbackup.dht.records import MAX_RECORD_BYTES, MAX_VALUE, set_record, value_record
from p2pbackup.net.contact import Contact
from p2pbackup.simulations.mesh import SimPeer
from tests.sim.helpers import build_mesh

BIG = [bytes([i]) * MAX_VALUE for i in range(32)]  # the largest record one may sign


def _contact(sim_peer: SimPeer) -> Contact:
    return Contact(sim_peer.node_id, *sim_peer.address)


async def test_500_records_of_2_mib_from_10_identities_are_mostly_refused(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 12, seed=15)
    replica, honest, attackers = mesh.peers[0], mesh.peers[1], mesh.peers[2:]
    assert len(attackers) == 10
    accepted = 0
    for n in range(50):
        for attacker in attackers:
            record = set_record(attacker.peer.identity, b"junk-%d" % n, BIG)
            assert record_bytes(record) > MAX_RECORD_BYTES
            reply = await attacker.peer.dht.call(_contact(replica), StoreRecord(record))
            assert isinstance(reply, Stored)
            accepted += reply.ok
            if not reply.ok:
                assert "bytes of records per owner" in reply.reason
    records = replica.peer.dht.records
    # Each identity fits one 2 MiB record in its budget; the other 490 are refused.
    assert accepted == 10
    assert records.total_bytes <= TOTAL_BUDGET
    assert all(records.owner_bytes(a.peer.identity.public_key) <= OWNER_BUDGET for a in attackers)
    # An honest owner's small record is still written.
    write = await honest.peer.dht.put(value_record(honest.peer.identity, b"index", 1, b"x"))
    assert len(write.acks) >= mesh.dht.write_quorum


async def test_a_record_for_a_key_far_from_the_replica_is_refused(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 30, seed=16)
    replica, writer = mesh.peers[0], mesh.peers[-1]
    dht = replica.peer.dht
    k = mesh.dht.k
    assert len(dht.table) > k

    def rank(key: bytes) -> int:
        """How many of the replica's contacts, the writer aside, are nearer the key."""
        mine = distance(replica.node_id, key)
        return sum(
            1 for c in dht.table if c.node_id != writer.node_id and distance(c.node_id, key) < mine
        )

    records = [value_record(writer.peer.identity, b"r%d" % n, 1, b"v") for n in range(200)]
    far = next(r for r in records if rank(r.key) >= k)
    near = next(r for r in records if rank(r.key) == 0)
    reply = await writer.peer.dht.call(_contact(replica), StoreRecord(far))
    assert reply == Stored(False, "this peer is not among the closest to the record's key")
    assert dht.records.get(far.key) is None
    assert await writer.peer.dht.call(_contact(replica), StoreRecord(near)) == Stored(True)
    assert dht.records.get(near.key) is not None
