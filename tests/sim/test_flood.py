"""Finding 3 (the routing part): two hundred identities take an owner's view of the mesh.

Hostile identities from two /24s (one provider's worth of addresses) each
ping the owner once; forty of them, ground to be nearer the owner's index
record than every honest peer, also ping every honest peer, and all of them
answer lookups with each other and acknowledge every record without keeping
it. The owner's routing table must hold at most the table limit from each
of their blocks, the owner's record must land on at least W honest replicas,
and once the attackers leave, a quorum read must still return it.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter

import trio
import trio.testing

from p2pbackup.base.ids import distance
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import (
    FindNode,
    GetRecord,
    Nodes,
    Ping,
    Pong,
    RecordReply,
    Stored,
    StoreRecord,
)
from p2pbackup.dht.records import value_record
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact
from p2pbackup.net.sim import SimTransport
from p2pbackup.net.transport import Remote
from p2pbackup.simulations.mesh import SimMesh
from p2pbackup.wire.messages import Message
from tests.sim.helpers import TEST_DHT

HONEST = 60
HOSTILE = 200
NEAR_KEY = 40  # of the hostile ids, ground nearer the record's key than every honest peer
BLOCKS = ("198.51.100", "198.51.101")


class Sybils:
    """Hostile identities on the simulated network that vouch only for each other."""

    def __init__(self, mesh: SimMesh, identities: list[Identity]) -> None:
        self.mesh = mesh
        self.contacts: list[Contact] = []
        self.transports: list[SimTransport] = []
        for i, identity in enumerate(identities):
            host = f"{BLOCKS[i % 2]}.{i // 2 + 1}"
            self.contacts.append(Contact(identity.node_id, host, 4000))
            self.transports.append(mesh.network.transport(identity, (host, 4000)))
        self.scope = trio.CancelScope()
        self.stored = 0

    def nearest(self, target: bytes) -> tuple[Contact, ...]:
        return tuple(sorted(self.contacts, key=lambda c: distance(c.node_id, target))[:20])

    async def handle(self, remote: Remote, message: Message) -> Message:
        if isinstance(message, Ping):
            return Pong()
        if isinstance(message, FindNode):
            return Nodes(self.nearest(message.target))
        if isinstance(message, StoreRecord):
            self.stored += 1
            return Stored(True)  # "stored", and dropped
        if isinstance(message, GetRecord):
            return RecordReply(None, self.nearest(message.key))
        raise P2PBackupError("no")

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.scope:
            async with trio.open_nursery() as nursery:
                for transport in self.transports:
                    await nursery.start(transport.serve, self.handle)
                task_status.started()

    async def ping_all(self, pairs: list[tuple[int, tuple[str, int]]]) -> None:
        async def one(index: int, address: tuple[str, int]) -> None:
            with contextlib.suppress(P2PBackupError):
                await self.transports[index].request(address, Ping(), 2.0)

        async with trio.open_nursery() as nursery:
            for index, address in pairs:
                nursery.start_soon(one, index, address)

    def leave(self) -> None:
        self.scope.cancel()


def _ground(rng: random.Random, key: bytes, honest: list[bytes]) -> list[Identity]:
    """Identities as an attacker makes them: 40 nearer `key` than all of `honest`, 160 any."""
    bound = min(distance(i, key) for i in honest)
    near: list[Identity] = []
    while len(near) < NEAR_KEY:
        identity = Identity.from_seed(rng.randbytes(32))
        if distance(identity.node_id, key) < bound:
            near.append(identity)
    anyhow = [Identity.from_seed(rng.randbytes(32)) for _ in range(HOSTILE - NEAR_KEY)]
    return near + anyhow


async def _settled(mesh: SimMesh) -> None:
    """Every peer has finished checking the addresses it was told."""
    while any(p.peer.dht.checks_pending for p in mesh.live()):
        await trio.sleep(0.5)


async def test_two_hundred_identities_neither_take_the_table_nor_hold_the_only_copies(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await SimMesh.create(nursery, 15, dht=TEST_DHT)
    await mesh.grow(HONEST)
    owner = mesh.peers[7]
    record = value_record(owner.peer.identity, b"snapshot-index", 1, b"every snapshot")
    sybils = Sybils(mesh, _ground(random.Random(15), record.key, [p.node_id for p in mesh]))
    await nursery.start(sybils.serve)

    pings = [(i, owner.address) for i in range(HOSTILE)]
    pings += [(i, p.address) for i in range(NEAR_KEY) for p in mesh if p is not owner]
    await sybils.ping_all(pings)
    await _settled(mesh)

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
