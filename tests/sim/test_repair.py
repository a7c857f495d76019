"""Repair with the owner offline, on a simulated mesh of real peers."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest
import trio

from p2pbackup.base.offload import inline
from p2pbackup.maintenance.config import MaintenanceConfig
from p2pbackup.maintenance.maintainer import Maintainer
from p2pbackup.net.transport import Remote
from p2pbackup.shares.upkeep_messages import Audit, AuditProof, QueryShare, ShareHeld
from p2pbackup.simulations.mesh import SimMesh, SimPeer
from p2pbackup.store import MemoryShareStore
from p2pbackup.wire.messages import Message
from tests.sim.helpers import KEYS, by_distance, by_id, equipped_mesh, holders, place_pack

CONFIG = MaintenanceConfig(audit_interval=600.0, request_timeout=5.0, share_timeout=10.0)


def maintain(mesh: SimMesh, stores: dict[bytes, MemoryShareStore]) -> dict[bytes, Maintainer]:
    """Start a maintenance loop on every live peer, as `serve` does."""
    maintainers = {}
    for sim_peer in mesh.live():
        maintainer = Maintainer(
            sim_peer.peer.dht,
            stores[sim_peer.node_id],
            CONFIG,
            random.Random(sim_peer.node_id),
            run_sync=inline,
        )
        sim_peer.peer.add_task(maintainer.run)
        maintainers[sim_peer.node_id] = maintainer
    return maintainers


def live_shares(
    mesh: SimMesh, stores: dict[bytes, MemoryShareStore], pack_id: bytes
) -> dict[int, list[bytes]]:
    alive = {p.node_id for p in mesh.live()}
    by_index: dict[int, list[bytes]] = {}
    for node_id, indices in holders(stores, pack_id).items():
        if node_id in alive:
            for index in indices:
                by_index.setdefault(index, []).append(node_id)
    return by_index


async def test_crashed_holders_are_replaced_with_the_owner_offline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 40, seed=21)
    packs = [(await place_pack(mesh, 150_000))[1] for _ in range(6)]
    mesh.crash(mesh.peers[0])  # the owner goes away for good
    peers = by_id(mesh)
    # Three holders of the first pack die (and of whatever else they held).
    for node_ids in list(live_shares(mesh, stores, packs[0]).values())[:3]:
        mesh.crash(peers[node_ids[0]])
    assert len(live_shares(mesh, stores, packs[0])) == 7
    maintainers = maintain(mesh, stores)
    await trio.sleep(4 * CONFIG.audit_interval)
    for pack_id in packs:
        live = live_shares(mesh, stores, pack_id)
        assert sorted(live) == list(range(10)), pack_id.hex()
        assert all(len(ids) == 1 for ids in live.values())  # one holder per share
    assert all(len(v) <= 1 for s in stores.values() for v in [s.indices(p) for p in packs])
    assert sum(m.stats.repairs for m in maintainers.values()) >= 1
    mesh.stop()


async def test_a_lying_holder_and_a_deleting_holder_are_found_and_replaced(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, stores = await equipped_mesh(nursery, 30, seed=22)
    _, pack_id = await place_pack(mesh, 200_000)
    mesh.crash(mesh.peers[0])
    held = holders(stores, pack_id)
    liar, deleter = list(held)[:2]

    async def garbage(remote: Remote, message: Message) -> Message:
        assert isinstance(message, Audit)
        return AuditProof(mesh.rng.randbytes(1000), (mesh.rng.randbytes(32),))

    liar_peer = by_id(mesh)[liar].peer
    honest_query = liar_peer._handlers[QueryShare]

    async def garbage_claim(remote: Remote, message: Message) -> Message:
        """The claim stands, but a proof that rides along on the query is garbage too."""
        claim = await honest_query(remote, message)
        if not isinstance(claim, ShareHeld) or claim.block is None:
            return claim
        return replace(claim, block=mesh.rng.randbytes(1000), proof=(mesh.rng.randbytes(32),))

    liar_peer.add_handler(Audit, garbage)
    liar_peer.add_handler(QueryShare, garbage_claim)
    stores[deleter].delete(pack_id, held[deleter][0], KEYS.identity.public_key)
    lied_index, deleted_index = held[liar][0], held[deleter][0]
    maintain(mesh, stores)
    await trio.sleep(6 * CONFIG.audit_interval)
    now = holders(stores, pack_id)
    honest = {i for nid, ids in now.items() if nid != liar for i in ids}
    assert lied_index in honest and deleted_index in honest
    assert sorted(honest) == list(range(10))
    mesh.stop()


def count_sent(sim_peer: SimPeer, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every request the peer sends from here on, by message type."""
    sent: Counter[str] = Counter()
    transport = sim_peer.peer.dht.transport
    request = transport.request

    async def counted(target: object, message: Message, *args: object, **kw: object) -> object:
        sent[message.TYPE.value] += 1
        return await request(target, message, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(transport, "request", counted)
    return sent


async def test_a_survey_asks_the_routing_table_first_and_looks_up_only_when_it_falls_short(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mesh, stores = await equipped_mesh(nursery, 30, seed=23)
    _, pack_id = await place_pack(mesh, 100_000)
    mesh.crash(mesh.peers[0])
    owner = KEYS.identity.public_key
    held = holders(stores, pack_id)
    holder = next(p for p in by_distance(mesh, pack_id) if p.node_id in held)  # the closest
    node_id, (index,) = holder.node_id, held[holder.node_id]
    sent = count_sent(holder, monkeypatch)

    async def first_survey() -> Maintainer:
        maintainer = Maintainer(
            holder.peer.dht, stores[node_id], CONFIG, random.Random(1), run_sync=inline
        )
        await maintainer.maintain(pack_id, index, owner)  # no view yet: a full survey
        return maintainer

    # Every holder is among the table's nearest and proves its share, and we are
    # the closest of them: no lookup.
    maintainer = await first_survey()
    # The nine siblings' proofs ride along on the queries: no audit of its own.
    assert sent["query_share"] >= 10 and sent["audit"] == 0
    assert maintainer.stats.audits == 9 and maintainer.stats.audits_failed == 0
    assert sent["find_node"] == 0 and maintainer.stats.lookups == 0
    assert len(maintainer.rounds.known_siblings(pack_id)) == 9  # the set was seen whole
    # The table's nearest peers that hold nothing are gone: only the nine siblings
    # answer, so the survey looks the set up to find live peers beyond them.
    near = holder.peer.dht.table.closest(pack_id, 15)
    for contact in near:
        if contact.node_id not in held:
            mesh.crash(by_id(mesh)[contact.node_id])
    sent.clear()
    maintainer = await first_survey()
    assert maintainer.stats.lookups == 1 and sent["find_node"] > 0
    mesh.stop()
