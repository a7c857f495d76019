"""Kademlia on hundreds of simulated peers: joins, lookups, records, crashes, partitions."""

from __future__ import annotations

import random
from collections.abc import Coroutine
from typing import Any, TypeVar

import trio
import trio.testing

from p2pbackup.dht.records import RecordKind, set_record, value_record
from p2pbackup.simulations.mesh import SimMesh, SimPeer
from tests.sim.helpers import build_mesh

T = TypeVar("T")


async def test_500_peers_join_through_one_and_lookups_find_the_true_k_closest(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 500, seed=7)
    rng = random.Random(1)
    k = mesh.dht.k
    for _ in range(40):
        source = rng.choice(mesh.live())
        target = rng.randbytes(20)
        outcome = await source.peer.dht.lookup(target)
        truth = [n for n in mesh.true_closest(target, k + 1) if n != source.node_id][:k]
        assert [c.node_id for c in outcome.contacts] == truth


def _holders(mesh: SimMesh, key: bytes) -> int:
    return sum(1 for p in mesh.live() if p.peer.dht.records.get(key) is not None)


async def test_records_written_with_w3_survive_30_percent_of_peers_crashing(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 150, seed=11)
    rng = random.Random(2)
    written = {}
    for i in range(25):
        owner = rng.choice(mesh.live())
        record = value_record(owner.peer.identity, f"index-{i}".encode(), 1, f"v{i}".encode())
        write = await owner.peer.dht.put(record)
        assert len(write.acks) >= 3
        written[record.key] = record.value
    # 30% of all peers crash in three waves, a republish interval apart.
    for _ in range(3):
        for victim in rng.sample(mesh.live(), len(mesh.peers) // 10):
            mesh.crash(victim)
        await trio.sleep(2 * mesh.dht.republish_interval)
        assert all(_holders(mesh, key) >= 3 for key in written)
    assert len(mesh.live()) == len(mesh.peers) - 3 * (len(mesh.peers) // 10)
    for key, value in written.items():
        reader = rng.choice(mesh.live())
        found = await reader.peer.dht.get(key)
        assert found is not None and found.value == value


async def test_a_record_written_during_a_partition_is_read_as_newest_after_it_heals(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 120, seed=5)
    owner, reader = mesh.peers[10], mesh.peers[11]
    name = b"snapshot-index-head"
    await owner.peer.dht.put(value_record(owner.peer.identity, name, 1, b"before"))
    side_a = {p.address for p in mesh.peers[: len(mesh.peers) // 2]} | {owner.address}
    side_b = {p.address for p in mesh.peers} - side_a - {owner.address} | {reader.address}
    side_a.discard(reader.address)
    mesh.network.partition(side_a, side_b)
    await owner.peer.dht.put(value_record(owner.peer.identity, name, 2, b"during"))
    # Both sides add to the owner's set record: neither addition may be lost.
    a_device, b_device = mesh.peers[3], mesh.peers[90]
    assert a_device.address in side_a and b_device.address in side_b
    index = b"snapshots"
    await a_device.peer.dht.put(set_record(owner.peer.identity, index, [b"snap-from-a"]))
    await b_device.peer.dht.put(set_record(owner.peer.identity, index, [b"snap-from-b"]))
    await trio.sleep(60)
    mesh.network.heal()
    await trio.sleep(2 * mesh.dht.republish_interval)
    head = await reader.peer.dht.get(value_record(owner.peer.identity, name, 0, b"").key)
    assert head is not None and head.value == b"during" and head.seq == 2
    snapshots = await reader.peer.dht.get(set_record(owner.peer.identity, index, [b"x"]).key)
    assert snapshots is not None and snapshots.kind is RecordKind.SET
    assert snapshots.values == {b"snap-from-a", b"snap-from-b"}


async def _crashing_meanwhile(
    mesh: SimMesh, victims: list[SimPeer], call: Coroutine[Any, Any, T]
) -> T:
    """Await `call` while `victims` crash just after its first queries left; within 30 s."""

    async def crash_soon() -> None:
        await trio.sleep(0.001)  # the first queries are already in flight
        for victim in victims:
            mesh.crash(victim)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(crash_soon)
        with trio.fail_after(30):
            return await call


async def test_peers_crashing_mid_lookup_and_mid_write_do_not_stall_the_caller(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 150, seed=3)
    source = mesh.peers[0]
    target = bytes(20)
    victims = [p for p in mesh.peers[1:] if p.node_id in mesh.true_closest(target, 8)][:4]
    outcome = await _crashing_meanwhile(mesh, victims, source.peer.dht.lookup(target))
    live_truth = [n for n in mesh.true_closest(target, 21) if n != source.node_id][:20]
    assert [c.node_id for c in outcome.contacts] == live_truth

    record = value_record(source.peer.identity, b"mid-write", 1, b"x")
    replicas = mesh.true_closest(record.key, 5)
    doomed = [p for p in mesh.live() if p.node_id in replicas][:2]
    write = await _crashing_meanwhile(mesh, doomed, source.peer.dht.put(record))
    assert len(write.acks) >= 3


async def test_a_wider_lookup_finds_the_same_peers_in_fewer_round_trips(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Placement asks n peers at once: the same k closest, sooner (virtual time)."""
    mesh = await build_mesh(nursery, 200, seed=5)
    rng = random.Random(3)
    took = {10: 0.0, 3: 0.0}  # the wide one first: the other then starts from its finds
    for _ in range(20):
        source = rng.choice(mesh.live())
        target = rng.randbytes(20)
        found = {}
        for alpha in took:
            began = trio.current_time()
            outcome = await source.peer.dht.lookup(target, alpha=alpha)
            took[alpha] += trio.current_time() - began
            found[alpha] = [c.node_id for c in outcome.contacts]
        assert found[10] == found[3]
    assert took[10] < 0.8 * took[3]


async def test_a_read_that_passed_over_the_records_silent_replicas_asks_them_before_saying_none(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Replicas that timed out lately (a lossy link, a busy disk) are passed over by
    lookups; the peers that answered in their place hold no copy, and a read took
    their "none" for the record's absence: a recovering owner was told it had no
    snapshots."""
    mesh = await build_mesh(nursery, 120, seed=9)
    owner, reader = mesh.peers[10], mesh.peers[11]
    record = value_record(owner.peer.identity, b"snapshot-index-head", 1, b"three snapshots")
    await owner.peer.dht.put(record)
    holders = [p for p in mesh.live() if p.peer.dht.records.get(record.key) is not None]
    assert len(holders) >= 3 and reader not in holders
    for holder in holders:
        reader.peer.dht.silent.timed_out(holder.node_id, trio.current_time())
    found = await reader.peer.dht.get(record.key)
    assert found is not None and found.value == b"three snapshots"
