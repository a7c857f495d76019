"""A peer that never answers a holder's questions leaves the holder's routing table,
as after failed DHT calls: the next survey does not ask it and wait again."""

from __future__ import annotations

import trio
import trio.testing

from p2pbackup.dht import node as dht_node
from p2pbackup.dht import route_check
from p2pbackup.dht.messages import FindNode
from p2pbackup.maintenance.audit import query_share
from p2pbackup.net.contact import Contact
from tests.sim.helpers import build_mesh


async def test_a_peer_silent_to_two_share_queries_leaves_the_askers_table(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 40, seed=3)
    asker = mesh.peers[5]
    table = asker.peer.dht.table
    gone, alive = [p for p in mesh.peers if p.node_id in table and p is not asker][:2]
    mesh.crash(gone)
    pack_id, owner = bytes(20), bytes(32)
    for contact in (table.get(gone.node_id), table.get(alive.node_id)):
        assert contact is not None
        for _ in range(2):
            await query_share(asker.peer.dht, contact, pack_id, owner, timeout=5.0)
    assert gone.node_id not in table
    assert alive.node_id in table  # it answered (holding nothing): it stays


async def test_peers_silent_once_are_remembered_up_to_a_bound(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 10, seed=4)
    dht = mesh.peers[1].peer.dht
    for i in range(dht_node._FAILURES_KEPT + 50):  # made-up names, each silent once
        dht.unanswered(Contact(i.to_bytes(20, "big"), "127.0.0.1", 9))
    assert len(dht._failures) == dht_node._FAILURES_KEPT
    assert (dht_node._FAILURES_KEPT + 49).to_bytes(20, "big") in dht._failures  # the latest


async def test_hearsay_whose_dial_back_fails_leaves_the_table_and_first_hand_stays(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A dead peer named in answers must not sit in tables, dialled back again after each
    cooldown and making every FIND_NODE near it check it anew: one failed check drops it.
    A contact that answered us first-hand stays through a failed check."""
    mesh = await build_mesh(nursery, 12, seed=5)
    asker, gone = mesh.peers[3], mesh.peers[7]
    dht = asker.peer.dht
    mesh.crash(gone)
    await trio.sleep(dht.config.dial_back_cooldown)  # every address may be dialled back again
    dht.table.remove(gone.node_id)
    dht.peers = type(dht.peers)()  # it never answered us: the contact is hearsay
    hearsay = Contact(gone.node_id, *gone.address)
    assert dht.table.add_hearsay(hearsay, trio.current_time())
    known = next(c for c in dht.table if c.node_id != gone.node_id)
    dht.peers.answered(known, trio.current_time())
    asked = mesh.peers[0].peer.dht
    # A FIND_NODE for the dead peer's id: its hearsay is among the nearest, so it is checked.
    await asked.call(Contact(asker.node_id, *asker.address), FindNode(gone.node_id))
    assert dht.checks_pending
    while dht.checks_pending:
        await trio.sleep(0.5)
    assert gone.node_id not in dht.table
    assert not route_check.drop_if_hearsay(dht, known)  # first-hand: a failed check keeps it
    assert known.node_id in dht.table
