"""Shares go back only to whom they belong: the owner and the pack's other holders.

A stranger that learnt a pack id asks every holder for its share, with no
proof, with a proof signed by its own key, and claiming (over QUERY_SHARE) a
share it cannot prove: each holder answers NoShare. The owner still reads
the pack back, and a holder still fetches a sibling's share for repair.
Seeded mesh, virtual time.
"""

from __future__ import annotations

import trio
import trio.testing

from p2pbackup.net.contact import Contact
from p2pbackup.net.transport import Remote
from p2pbackup.shares.fetch_rules import owner_fetch
from p2pbackup.shares.messages import GetShare, NoShare, ShareData
from p2pbackup.shares.upkeep_messages import Audit, AuditProof, QueryShare, ShareHeld
from p2pbackup.simulations.mesh import SimPeer
from p2pbackup.wire.messages import Message
from tests.sim.helpers import KEYS, by_id, equipped_mesh, holders, owner_store, place_pack


def _contact(sim_peer: SimPeer) -> Contact:
    return Contact(sim_peer.node_id, *sim_peer.address)


async def _ask(asker: SimPeer, holder: SimPeer, message: Message) -> Message:
    reply = await asker.peer.dht.transport.request(_contact(holder), message, 10.0)
    return reply.message


async def test_a_strangers_get_share_is_refused_while_owner_and_siblings_are_served(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 20, seed=151)
    data, pack_id = await place_pack(mesh, 150_000)
    peers = by_id(mesh)
    held = holders(stores, pack_id)
    stranger = next(p for p in mesh.peers[1:] if p.node_id not in held)
    holder_peers = [peers[nid] for nid in held]
    # Plain, and with a proof signed by the stranger's own key: neither is the owner's.
    owner = KEYS.identity.public_key
    signed = owner_fetch(stranger.peer.identity, pack_id, stranger.node_id)
    forged = GetShare(pack_id, owner, signed.owner_proof)
    for holder in holder_peers:
        assert isinstance(await _ask(stranger, holder, GetShare(pack_id, owner)), NoShare)
        assert isinstance(await _ask(stranger, holder, forged), NoShare)

    # The stranger now claims a share it does not hold, as an eraser would: it
    # answers QUERY_SHARE with a real descriptor and fails the audit.
    claimed = await _ask(stranger, holder_peers[0], QueryShare(pack_id, owner))
    assert isinstance(claimed, ShareHeld)

    async def claim(remote: Remote, message: Message) -> Message:
        return ShareHeld(claimed.index, claimed.descriptor)

    async def bluff(remote: Remote, message: Message) -> Message:
        return AuditProof(b"\0" * 100, ())

    stranger.peer.add_handler(QueryShare, claim)
    stranger.peer.add_handler(Audit, bluff)
    for holder in holder_peers[1:]:
        assert isinstance(await _ask(stranger, holder, GetShare(pack_id, owner)), NoShare)

    # The owner reads the pack back; a sibling holder is served after its proof.
    assert await owner_store(mesh.peers[0]).get(pack_id) == data
    sibling, other = holder_peers[1], holder_peers[2]
    served = await _ask(sibling, other, GetShare(pack_id, owner))
    assert isinstance(served, ShareData) and served.index == held[other.node_id][0]
    mesh.stop()
