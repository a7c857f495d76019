"""What a join costs: a peer dials back only the claims it may keep (decision 0049)."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import FindNode, Nodes, Ping, Pong
from p2pbackup.net.contact import Contact
from p2pbackup.net.sim import SimNetwork, SimTransport
from p2pbackup.net.transport import Handler, Remote
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.shares.messages import NoShare
from p2pbackup.shares.upkeep_messages import QueryShare
from p2pbackup.wire.messages import Message
from tests.sim.helpers import TEST_DHT, build_mesh

HOME = ("10.0.0.1", 4000)


async def _pong(remote: Remote, message: Message) -> Message:
    return Pong()


async def _mesh_of_one(nursery: trio.Nursery) -> tuple[SimNetwork, Peer]:
    network = SimNetwork(random.Random(1))
    await nursery.start(network.run)
    identity = Identity.from_seed(bytes(32))
    peer = Peer(
        identity, network.transport(identity, HOME), PeerConfig(dht=TEST_DHT), random.Random(1)
    )
    await nursery.start(peer.run)
    return network, peer


async def _stranger(nursery: trio.Nursery, network: SimNetwork, seed: int) -> SimTransport:
    stranger = network.transport(Identity.from_seed(bytes([seed]) * 32), (f"10.0.{seed}.1", 4000))
    await nursery.start(stranger.serve, _pong)
    return stranger


async def test_a_ping_introduces_nobody_and_a_find_node_is_checked_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    network, peer = await _mesh_of_one(nursery)
    stranger = await _stranger(nursery, network, 1)
    at_peer = Contact(peer.node_id, *HOME)
    assert isinstance((await stranger.request(at_peer, Ping(), 2.0)).message, Pong)
    # A PING is what dial-backs and probes send: answering one with a check doubles them.
    assert peer.dht.checks_pending == 0
    assert network.stats.by_type == {"ping": 1}
    assert isinstance((await stranger.request(at_peer, FindNode(bytes(20)), 2.0)).message, Nodes)
    assert peer.dht.checks_pending == 1  # a request that introduces it: checked, once
    while peer.dht.checks_pending:
        await trio.sleep(0.1)
    assert stranger.identity.node_id in peer.dht.table
    assert network.stats.by_type == {"ping": 2, "find_node": 1}


async def test_a_claim_to_a_bucket_full_of_fresh_contacts_is_not_dialled_back(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    network, peer = await _mesh_of_one(nursery)
    crowded, roomy = await _stranger(nursery, network, 1), await _stranger(nursery, network, 2)
    table, rng = peer.dht.table, random.Random(3)
    index = table.bucket_index(crowded.identity.node_id)
    assert index != table.bucket_index(roomy.identity.node_id)
    for i in range(table.k):  # heard just now: nobody to replace
        fresh = table.random_id_in_bucket(index, rng.getrandbits(160))
        contact = Contact(fresh, f"10.1.{i}.1", 4000)
        peer.dht.peers.answered(contact, trio.current_time())  # proven: handed out unchecked
        table.add(contact, trio.current_time())
    assert table.bucket_size(index) == table.k
    at_peer = Contact(peer.node_id, *HOME)
    await crowded.request(at_peer, FindNode(bytes(20)), 2.0)
    assert peer.dht.checks_pending == 0  # it could not enter the table: no dial-back
    await roomy.request(at_peer, FindNode(bytes(20)), 2.0)
    assert peer.dht.checks_pending == 1


def _ask_once(handler: Handler, message: Message) -> Message:
    """One request to a simulated peer that answers with `handler`."""

    async def main() -> Message:
        network = SimNetwork(random.Random(1))
        async with trio.open_nursery() as nursery:
            await nursery.start(network.run)
            asker = network.transport(Identity.generate(), ("10.0.1.1", 4000))
            answerer = network.transport(Identity.generate(), ("10.0.2.1", 4000))
            await nursery.start(answerer.serve, handler)
            reply = await asker.request(answerer.listen, message, 2.0)
            nursery.cancel_scope.cancel()
        return reply.message

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_find_node_handler_that_waits_is_reported_not_answered_late() -> None:
    async def waits(remote: Remote, message: Message) -> Message:
        await trio.sleep(1)
        return Nodes(())

    with pytest.raises(ExceptionGroup) as caught:
        _ask_once(waits, FindNode(bytes(20)))
    assert caught.group_contains(RuntimeError, match="must answer at once")


def test_a_share_query_is_answered_at_once_past_its_checkpoints() -> None:
    """A holder's store calls are checkpoints in the simulator (decision 0063)."""

    async def checks(remote: Remote, message: Message) -> Message:
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        return NoShare()

    assert isinstance(_ask_once(checks, QueryShare(bytes(20), bytes(32))), NoShare)


async def _rejoin_dial_backs(nursery: trio.Nursery, *, disk_kept: bool) -> tuple[int, int]:
    """A peer of a 40-peer mesh restarts: how many peers it had checked, and how many
    of those it dialled back while joining again."""
    mesh = await build_mesh(nursery, 40, seed=4)
    peer, bootstrap = mesh.peers[20], mesh.peers[0]
    book = peer.peer.dht.peers
    checked = {p.address for p in mesh.peers if book.verified(Contact(p.node_id, *p.address))}
    checked.discard(bootstrap.address)  # a join pings its bootstrap peer whatever it knows
    mesh.crash(peer)
    await trio.testing.wait_all_tasks_blocked()
    await mesh.restart(peer, bootstrap.address, disk_kept=disk_kept)
    await trio.sleep(4 * mesh.dht.rpc_timeout)  # the second self-lookup and its checks
    back = Contact(peer.node_id, *peer.address)
    for other in mesh.live():  # everyone asks it something, as maintenance would
        if other is not peer:
            await other.peer.dht.call(back, FindNode(other.node_id))
    await trio.sleep(4 * mesh.dht.rpc_timeout)  # the checks those questions started
    dialled = set(peer.peer.dht._dial_backs._tried)  # every address it offered to check
    return len(checked), len(dialled & checked)


async def test_a_peer_back_with_its_disk_does_not_dial_back_whom_it_checked_before(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    checked, dialled = await _rejoin_dial_backs(nursery, disk_kept=True)
    assert checked >= 10
    assert dialled == 0


async def test_a_peer_back_with_a_new_disk_checks_its_peers_again(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    checked, dialled = await _rejoin_dial_backs(nursery, disk_kept=False)
    assert dialled >= checked // 4  # those its new walk did not meet first-hand


async def _rejoin(nursery: trio.Nursery, *, disk_kept: bool) -> tuple[int, int, int]:
    """A peer of a 40-peer mesh restarts: its table's size before, once it joined again,
    and the messages of the mesh from its restart until its joining is done."""
    mesh = await build_mesh(nursery, 40, seed=5)
    peer, bootstrap = mesh.peers[20], mesh.peers[0]
    before = len(peer.peer.dht.table)
    mesh.crash(peer)
    await trio.testing.wait_all_tasks_blocked()
    sent = mesh.network.stats.sent
    await mesh.restart(peer, bootstrap.address, disk_kept=disk_kept)
    after = len(peer.peer.dht.table)
    await trio.sleep(4 * mesh.dht.rpc_timeout)  # a second look, and the checks it started
    return before, after, mesh.network.stats.sent - sent


async def test_a_peer_back_with_its_disk_starts_from_the_table_its_book_rebuilds(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    before, after, kept_cost = await _rejoin(nursery, disk_kept=True)
    assert after >= before  # every contact it had answered it before, and is still up
    _, empty_after, empty_cost = await _rejoin(nursery, disk_kept=False)
    assert empty_after < before  # a new disk knows only what its joining walk was told
    # Its neighbourhood known, it asks the alpha nearest only, with no second look.
    assert kept_cost < empty_cost // 2


async def test_a_peer_whose_acquaintances_all_left_joins_through_its_bootstrap(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 30, seed=6)
    peer = mesh.peers[10]
    mesh.crash(peer)
    newcomer = await mesh.add_peer(mesh.peers[0].address)  # met after it went away
    for other in mesh.live():
        if other is not newcomer:
            mesh.crash(other)
    await trio.testing.wait_all_tasks_blocked()
    await mesh.restart(peer, newcomer.address)
    assert peer.peer.joined.is_set()
    assert newcomer.node_id in peer.peer.dht.table
