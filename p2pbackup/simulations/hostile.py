"""Scenario `hostile`: a fraction of the peers drop, corrupt, lie or steal claims.

Before the owner backs up, a fifth of the storage peers (by default) turn
hostile, in four kinds taken in turn: droppers accept shares and keep
nothing; corrupters keep shares but hand out flipped bytes and answer audits
with garbage; liars answer routing questions with made-up peers; stealers
answer each holder's QUERY_SHARE with that holder's own index and prove it
with the holder's leaked share, so that a holder trusting the claim would
drop its copy. Their shares (but for the liars') never count as live. The
run must lose no pack, and the final restore must never take a corrupted
share for good data: every share is checked against the owner-signed Merkle
roots before it is used.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from p2pbackup.base.ids import distance
from p2pbackup.codec.erasure import block_count, block_proof, share_block
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import FindNode, Nodes
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact
from p2pbackup.net.transport import Remote
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.shares.messages import GetShare, NoShare, PutShare, ShareData, ShareStored
from p2pbackup.shares.upkeep_messages import Audit, AuditProof, QueryShare, RenewLease, ShareHeld
from p2pbackup.simulations.mesh import SimMesh
from p2pbackup.simulations.storage_run import StorageScenario
from p2pbackup.simulations.world import SimPeer, World, WorldParams
from p2pbackup.store import ShareStore, StoredShare
from p2pbackup.wire.messages import Message

KINDS = ("drop", "corrupt", "lie", "steal")
# (pack id, the asking holder's node id) -> that holder's share, as a leak would give it.
Leak = Callable[[bytes, bytes], StoredShare | None]


@dataclass(frozen=True)
class HostileParams(WorldParams):
    days: float = 2.0
    hostile: float = 0.2


def _flip(data: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in data)


def leak_from(stores: Mapping[bytes, ShareStore]) -> Leak:
    """The asker's own share, read from its store: what a stealer obtains by fetching it
    as a sibling (any holder may) or by any other leak."""

    def leak(pack_id: bytes, asker: bytes) -> StoredShare | None:
        store = stores.get(asker)
        if store is None:
            return None
        for index in store.indices(pack_id):
            return store.get(pack_id, index)
        return None

    return leak


def steal_claims(peer: Peer, leak: Leak) -> None:
    """Claim, to each holder that asks, the holder's own share, and prove it when audited.

    The claim-stealing attack: a holder that takes a closer sibling's proof of its
    own index as reason to drop its copy erases the pack, one holder at a time."""
    honest = peer._handlers.copy()

    async def steal(remote: Remote, message: Message) -> Message:
        assert isinstance(message, QueryShare | Audit)
        share = leak(message.pack_id, remote.node_id)
        if share is not None and isinstance(message, QueryShare):
            return ShareHeld(share.index, share.descriptor)
        if (
            share is not None
            and isinstance(message, Audit)
            and share.index == message.index
            and message.block < block_count(len(share.data))
        ):
            proof = tuple(block_proof(share.data, message.block))
            return AuditProof(share_block(share.data, message.block), proof)
        handler = honest.get(type(message))
        if handler is None:
            raise P2PBackupError("no such share or block held here")
        return await handler(remote, message)

    peer.add_handler(QueryShare, steal)
    peer.add_handler(Audit, steal)


def grind(rng: random.Random, target: bytes, beat: bytes, count: int) -> list[Identity]:
    """`count` identities closer to `target` than `beat` is: keys are free, so an attacker
    simply tries seeds until enough land close (thousands a second on one core)."""
    found: list[Identity] = []
    while len(found) < count:
        identity = Identity.from_seed(rng.randbytes(32))
        if distance(identity.node_id, target) < distance(beat, target):
            found.append(identity)
    return found


async def join_as(
    mesh: SimMesh, identity: Identity, address: tuple[str, int], bootstrap: tuple[str, int]
) -> SimPeer:
    """A peer of the attacker's making (a ground identity, an address it chose) joins."""
    transport = mesh.network.transport(identity, address)
    config = PeerConfig(dht=mesh.dht, bootstrap=(bootstrap,))
    peer = Peer(identity, transport, config, random.Random(mesh.rng.getrandbits(64)))
    await mesh.nursery.start(peer.run)
    sim_peer = SimPeer(peer, address)
    mesh.peers.append(sim_peer)
    await peer.joined.wait()
    return sim_peer


def turn_hostile(world: World, sim_peer: SimPeer, kind: str, rng: random.Random) -> None:
    """Replace the peer's honest answers with `kind`'s misbehaviour."""
    peer = sim_peer.peer
    if kind == "steal":
        steal_claims(peer, leak_from(world.storage.stores))
        world.hostile.add(sim_peer.node_id)
        return
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
