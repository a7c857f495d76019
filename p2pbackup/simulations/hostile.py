"""Scenario `hostile`: a fraction of the peers drop, corrupt or lie.

Before the owner backs up, a fifth of the storage peers (by default) turn
hostile, in three kinds taken in turn: droppers accept shares and keep
nothing; corrupters keep shares but hand out flipped bytes and answer audits
with garbage; liars answer routing questions with made-up peers. Their
shares (but for the liars') never count as live. The run must lose no pack, and the final restore
must never take a corrupted share for good data: every share is checked
against the owner-signed Merkle roots before it is used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from p2pbackup.dht.messages import FindNode, Nodes
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact
from p2pbackup.net.transport import Remote
from p2pbackup.shares.messages import GetShare, NoShare, PutShare, ShareData, ShareStored
from p2pbackup.shares.upkeep_messages import Audit, AuditProof, QueryShare, RenewLease
from p2pbackup.simulations.storage_run import StorageScenario
from p2pbackup.simulations.world import SimPeer, World, WorldParams
from p2pbackup.wire.messages import Message

KINDS = ("drop", "corrupt", "lie")


@dataclass(frozen=True)
class HostileParams(WorldParams):
    days: float = 2.0
    hostile: float = 0.2


def _flip(data: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in data)


def turn_hostile(world: World, sim_peer: SimPeer, kind: str, rng: random.Random) -> None:
    """Replace the peer's honest answers with `kind`'s misbehaviour."""
    peer = sim_peer.peer
    honest = peer._handlers.copy()

    async def drop(remote: Remote, message: Message) -> Message:
        if isinstance(message, PutShare):
            return ShareStored()  # says yes, keeps nothing
        if isinstance(message, GetShare | QueryShare | RenewLease):
            return NoShare()
        raise P2PBackupError("no such share or block held here")

    async def corrupt(remote: Remote, message: Message) -> Message:
        reply = await honest[type(message)](remote, message)
        if isinstance(reply, ShareData):
            return ShareData(reply.index, reply.descriptor, _flip(reply.data))
        if isinstance(reply, AuditProof):
            return AuditProof(_flip(reply.data), reply.proof)
        return reply

    async def lie(remote: Remote, message: Message) -> Message:
        assert isinstance(message, FindNode)
        fake = tuple(
            Contact(rng.randbytes(20), f"10.254.{rng.randrange(256)}.{rng.randrange(256)}", 4000)
            for _ in range(8)
        )
        return Nodes(fake)

    if kind == "lie":
        peer.add_handler(FindNode, lie)
        world.liars.add(sim_peer.node_id)
        return
    behaviour = drop if kind == "drop" else corrupt
    for message_type in (PutShare, GetShare, QueryShare, RenewLease, Audit):
        peer.add_handler(message_type, behaviour)
    world.hostile.add(sim_peer.node_id)


def setup(world: World, params: HostileParams, rng: random.Random) -> dict[str, Any]:
    """Turn a share of the storage peers hostile, the kinds taken in turn; count each kind."""
    kinds: dict[str, int] = {kind: 0 for kind in KINDS}
    peers = world.storage_peers()
    for i, sim_peer in enumerate(rng.sample(peers, int(params.hostile * len(peers)))):
        kind = KINDS[i % len(KINDS)]
        turn_hostile(world, sim_peer, kind, rng)
        kinds[kind] += 1
    return {f"hostile_{kind}": count for kind, count in kinds.items()}


SCENARIO = StorageScenario(
    "hostile",
    "a fifth of the peers drop, corrupt or lie: is anything lost, is bad data ever used?",
    HostileParams,
    salt=0xBAD,
    setup=setup,
)
