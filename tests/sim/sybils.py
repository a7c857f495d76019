"""Hostile identities for the simulated-mesh tests: a flood from a few address blocks.

Two hundred ids from two /24s (one provider's worth of addresses) that name
only each other in lookups and say "stored" to every record and share while
keeping nothing: what took an owner's view of the mesh in issue 15's finding 3.
"""

from __future__ import annotations

import contextlib
import random

import trio

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
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact
from p2pbackup.net.sim import SimTransport
from p2pbackup.net.transport import Remote
from p2pbackup.shares.messages import GetShare, NoShare, PutShare, ShareStored
from p2pbackup.shares.upkeep_messages import QueryShare
from p2pbackup.simulations.mesh import SimMesh
from p2pbackup.wire.messages import Message

HOSTILE = 200
BLOCKS = ("198.51.100", "198.51.101")


class Sybils:
    """Hostile identities on the simulated network that vouch only for each other,
    and acknowledge every record and share they are sent without keeping any."""

    def __init__(self, mesh: SimMesh, identities: list[Identity]) -> None:
        self.mesh = mesh
        self.contacts: list[Contact] = []
        self.transports: list[SimTransport] = []
        for i, identity in enumerate(identities):
            host = f"{BLOCKS[i % 2]}.{i // 2 + 1}"
            self.contacts.append(Contact(identity.node_id, host, 4000))
            self.transports.append(mesh.network.transport(identity, (host, 4000)))
        self.scope = trio.CancelScope()
        self.stored = 0  # records acknowledged and dropped
        self.shares_taken = 0  # shares acknowledged and dropped

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
        if isinstance(message, PutShare):
            self.shares_taken += 1
            return ShareStored()  # "stored", and dropped
        if isinstance(message, QueryShare | GetShare):
            return NoShare()
        raise P2PBackupError("no such share or block held here")

    async def serve(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with self.scope:
            async with trio.open_nursery() as nursery:
                for transport in self.transports:
                    await nursery.start(transport.serve, self.handle)
                task_status.started()

    async def ping_all(self, pairs: list[tuple[int, tuple[str, int]]]) -> None:
        """Each (index, address): that identity introduces itself there with a FIND_NODE."""

        async def one(index: int, address: tuple[str, int]) -> None:
            with contextlib.suppress(P2PBackupError):
                await self.transports[index].request(
                    address, FindNode(self.contacts[index].node_id), 2.0
                )

        async with trio.open_nursery() as nursery:
            for index, address in pairs:
                nursery.start_soon(one, index, address)

    def leave(self) -> None:
        self.scope.cancel()


def ground(rng: random.Random, key: bytes, honest: list[bytes], near: int) -> list[Identity]:
    """Identities as an attacker makes them: `near` of them nearer `key` than all of
    `honest` (keys are free: it tries seeds), the rest of the `HOSTILE` any."""
    bound = min(distance(i, key) for i in honest)
    close: list[Identity] = []
    while len(close) < near:
        identity = Identity.from_seed(rng.randbytes(32))
        if distance(identity.node_id, key) < bound:
            close.append(identity)
    return close + [Identity.from_seed(rng.randbytes(32)) for _ in range(HOSTILE - near)]


async def settled(mesh: SimMesh) -> None:
    """Every peer has finished checking the addresses it was told."""
    while any(p.peer.dht.checks_pending for p in mesh.live()):
        await trio.sleep(0.5)
