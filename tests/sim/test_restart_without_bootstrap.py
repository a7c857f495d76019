"""A peer restarted with no address to start from (a home recovered from its phrase
keeps none) rejoins through the acquaintances in its book: it reported itself joined
with an empty table and never found a peer again."""

from __future__ import annotations

import trio
import trio.testing

from tests.sim.helpers import build_mesh


async def test_a_peer_restarted_without_an_address_rejoins_from_its_book(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh = await build_mesh(nursery, 6, seed=11)
    await trio.sleep(60)  # every peer has met the others first-hand
    back = mesh.peers[3]
    others = {p.node_id for p in mesh.peers if p is not back}
    mesh.crash(back)
    await mesh.restart(back, ())  # no bootstrap address: only its book

    table = {c.node_id for c in back.peer.dht.table}
    assert back.peer.joined.is_set() and table == others
