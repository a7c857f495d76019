"""Meeting what LAN discovery finds, on the simulated network: a found peer that proves
its id is met and joined through; a finding whose id the address cannot prove is not."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from p2pbackup.net.lan_announce import OPEN_TAG, Finding, Introductions
from p2pbackup.peer.lan import LanMeetings
from p2pbackup.simulations.mesh import SimMesh, SimPeer
from p2pbackup.simulations.runner import pin_trio_scheduler
from tests.net.lan_support import Silent


@pytest.fixture(autouse=True)
def _seeded_scheduler() -> None:
    pin_trio_scheduler(1234)  # before the loop starts: every run takes the same path


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():
        await trio.sleep(0.5)


async def _meetings(nursery: trio.Nursery, sim_peer: SimPeer, **kwargs: object) -> LanMeetings:
    meetings = LanMeetings(sim_peer.peer, OPEN_TAG, discovery=Silent, **kwargs)  # type: ignore[arg-type]
    await nursery.start(meetings.run)
    return meetings


async def test_a_found_peer_is_met_and_the_mesh_behind_it_joined(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await SimMesh.create(nursery, seed=5)
    lone = await mesh.add_peer()  # no bootstrap: knows nobody
    first = await mesh.add_peer()
    second = await mesh.add_peer(first.address)
    await _until(lambda: second.node_id in first.peer.dht.table)
    meetings = await _meetings(nursery, lone)

    meetings.found(Finding(first.node_id, (first.address,)))
    table = lone.peer.dht.table
    await _until(lambda: first.node_id in table and second.node_id in table)
    assert meetings.met == 1
    assert lone.peer.dht.peers.verified(table.get(first.node_id))  # type: ignore[arg-type]


async def test_a_finding_whose_id_the_address_cannot_prove_is_not_added(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await SimMesh.create(nursery, seed=6)
    lone = await mesh.add_peer()
    other = await mesh.add_peer()
    meetings = await _meetings(nursery, lone)

    forged = bytes(20)
    meetings.found(Finding(forged, (other.address,)))
    await _until(lambda: not meetings.busy)
    assert meetings.met == 0 and len(lone.peer.dht.table) == 0


async def test_a_flood_of_findings_costs_the_budget_in_dials(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await SimMesh.create(nursery, seed=7)
    lone = await mesh.add_peer()
    meetings = await _meetings(nursery, lone, introductions=Introductions(burst=5))
    sent = mesh.network.stats.sent

    # Five hundred made-up peers at made-up addresses, announced at once.
    for i in range(500):
        meetings.found(Finding(i.to_bytes(20, "big"), ((f"10.200.{i >> 8}.{i & 255}", 4000),)))
    await _until(lambda: not meetings.busy)
    assert meetings.met == 0 and len(lone.peer.dht.table) == 0
    assert 1 <= mesh.network.stats.sent - sent <= 5
