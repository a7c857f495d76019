"""Scenario `hostile`: a fraction of the peers drop, corrupt, lie, steal claims or squat.

Before the owner backs up, a fifth of the storage peers (by default) turn
hostile, in five kinds taken in turn: droppers accept shares and keep
nothing; corrupters keep shares but hand out flipped bytes and answer audits
with garbage; liars answer routing questions with made-up peers; stealers
answer each holder's QUERY_SHARE with that holder's own index and prove it
with the holder's leaked share, so that a holder trusting the claim would
drop its copy; squatters know the owner's pack ids before it backs up and put
a junk share of their own under each on the peers closest to it, in the slot
the owner's share will need. Their shares (but for the liars') never count as
live. The run must lose no pack, and the final restore must never take a
corrupted share for good data: every share is checked against the
owner-signed Merkle roots before it is used.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import trio

from p2pbackup.base.ids import distance
from p2pbackup.codec.descriptor import MAX_LEASE_EXPIRY, describe_pack
from p2pbackup.codec.erasure import block_count, block_proof, encode_pack, share_block
from p2pbackup.codec.packs import pack_id_of
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

KINDS = ("drop", "corrupt", "lie", "steal", "squat")
SQUAT_MARGIN = 4  # squatted peers per pack beyond the n closest
# (pack id, owner key, the asking holder's node id) -> that holder's share, as a leak gives it.
Leak = Callable[[bytes, bytes, bytes], StoredShare | None]


@dataclass(frozen=True)
class HostileParams(WorldParams):
    days: float = 2.0
    hostile: float = 0.2


def _flip(data: bytes) -> bytes:
    return bytes(b ^ 0x5A for b in data)


def leak_from(stores: Mapping[bytes, ShareStore]) -> Leak:
    """The asker's own share, read from its store: what a stealer obtains by fetching it
    as a sibling (any holder may) or by any other leak."""

    def leak(pack_id: bytes, owner: bytes, asker: bytes) -> StoredShare | None:
        store = stores.get(asker)
        if store is None:
            return None
        for index in store.indices(pack_id, owner):
            return store.get(pack_id, index, owner)
        return None

    return leak


def steal_claims(peer: Peer, leak: Leak) -> None:
    """Claim, to each holder that asks, the holder's own share, and prove it when audited.

    The claim-stealing attack: a holder that takes a closer sibling's proof of its
    own index as reason to drop its copy erases the pack, one holder at a time."""
    honest = peer._handlers.copy()

    async def steal(remote: Remote, message: Message) -> Message:
        assert isinstance(message, QueryShare | Audit)
        share = leak(message.pack_id, message.owner, remote.node_id)
        if share is not None and isinstance(message, QueryShare):
            if message.block is None or message.block >= block_count(len(share.data)):
                return ShareHeld(share.index, share.descriptor)
            proof = tuple(block_proof(share.data, message.block))
            return ShareHeld(
                share.index, share.descriptor, share_block(share.data, message.block), proof
            )
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
    sim_peer = mesh.enlist(SimPeer(peer, address))
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
        if isinstance(reply, ShareHeld) and reply.block is not None:
            return replace(reply, block=_flip(reply.block))
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
    if kind == "squat":
        world.nursery.start_soon(squat, world, sim_peer)
        world.hostile.add(sim_peer.node_id)
        return
    behaviour = drop if kind == "drop" else corrupt
    for message_type in (PutShare, GetShare, QueryShare, RenewLease, Audit):
        peer.add_handler(message_type, behaviour)
    world.hostile.add(sim_peer.node_id)


def junk_shares(
    squatter: Identity,
    pack_id: bytes,
    n: int,
    lease_expiry: int = MAX_LEASE_EXPIRY,
    data: bytes = b"j",
) -> list[PutShare]:
    """A set of `n` shares of `data` under someone else's `pack_id`, soundly signed by the
    squatter's own key (one copy per index, k = 1): any holder's checks pass them."""
    shares = encode_pack(data, 1, n)
    descriptor = describe_pack(squatter, pack_id, shares, 1, len(data), lease_expiry)
    signed = descriptor.to_bytes()
    return [PutShare(pack_id, index, signed, share) for index, share in enumerate(shares)]


def planned_packs(params: WorldParams) -> list[bytes]:
    """The owner's pack ids, drawn as `World._back_up` draws its data: the strongest
    squatter knows every pack id before the owner places a share of it."""
    data_rng = random.Random(params.seed ^ 0xDA7A)
    return [pack_id_of(data_rng.randbytes(params.pack_bytes)) for _ in range(params.packs)]


async def squat(world: World, sim_peer: SimPeer) -> None:
    """Before the owner's shares arrive, put a junk share under each of its pack ids on the
    peers closest to it, at the index the owner would place there (closest first)."""
    peer = sim_peer.peer
    n = world.redundancy.n

    async def one(message: PutShare, target: SimPeer) -> None:
        contact = Contact(target.node_id, *target.address)
        with contextlib.suppress(P2PBackupError):
            await peer.dht.transport.request(contact, message, 30.0)

    async with trio.open_nursery() as nursery:
        for pack_id in planned_packs(world.params):
            junk = junk_shares(peer.identity, pack_id, n)
            others = [p for p in world.storage_peers() if p is not sim_peer]
            others.sort(key=lambda p: distance(p.node_id, pack_id))
            for index, target in enumerate(others[: n + SQUAT_MARGIN]):
                nursery.start_soon(one, junk[index % n], target)


def squat_figures(world: World) -> dict[str, int]:
    """Junk shares honest peers hold under the owner's pack ids, and how many of those
    sit beside the owner's own share of the pack: each such slot was squatted first."""
    owner = world.keys.identity.public_key
    packs = set(world.packs)
    junk = beside = 0
    for node_id, store in world.storage.stores.items():
        if node_id in world.hostile:
            continue
        held: dict[bytes, set[bytes]] = {}
        for info in store.list_shares():
            if info.pack_id in packs:
                held.setdefault(info.pack_id, set()).add(info.owner)
        for owners in held.values():
            strangers = len(owners - {owner})
            junk += strangers
            beside += strangers if owner in owners else 0
    return {"squat_junk_held": junk, "squat_beside_owner": beside}


def setup(world: World, params: HostileParams, rng: random.Random) -> dict[str, Any]:
    """Turn a share of the storage peers hostile, the kinds taken in turn; count each kind."""
    kinds: dict[str, int] = {kind: 0 for kind in KINDS}
    peers = world.storage_peers()
    for i, sim_peer in enumerate(rng.sample(peers, int(params.hostile * len(peers)))):
        kind = KINDS[i % len(KINDS)]
        turn_hostile(world, sim_peer, kind, rng)
        kinds[kind] += 1
    return {f"hostile_{kind}": count for kind, count in kinds.items()}


async def drive(world: World, params: HostileParams, rng: random.Random) -> dict[str, Any]:
    """Report, once the owner has backed up, what the squatters took of its slots."""
    return squat_figures(world)


SCENARIO = StorageScenario(
    "hostile",
    "a fifth of the peers drop, corrupt, lie, steal or squat: is anything lost, any bad data used?",
    HostileParams,
    salt=0xBAD,
    setup=setup,
    drive=drive,
)
