"""An owner's check of many packs while two holders hang, on virtual time.

A hung holder (stopped, asleep, cut off without a reset) keeps its connection
and answers nothing. Each pack's survey waited out the RPC timeout for it in
its lookup, so a check of a few hundred packs took minutes. With one
`Patience` for the whole check, the hung holders cost it one stall interval:
the check finishes in about the time of an undisturbed one plus that stall,
counts the hung holders' shares as missing and names them.
"""

from __future__ import annotations

import random

import trio

from p2pbackup.dht.node import DhtNode
from p2pbackup.maintenance.owner_check import SURVEY_STALL, PackHealth, Patience, survey_pack
from p2pbackup.net.contact import Contact
from tests.sim.helpers import KEYS, by_distance, equipped_mesh, place_pack

PACKS = 24
PARALLEL = 8  # as `check` runs them
TIMEOUT = 30.0


async def _check_all(
    owner_dht: DhtNode, pack_ids: list[bytes], patience: Patience
) -> list[PackHealth]:
    limiter = trio.CapacityLimiter(PARALLEL)
    healths: list[PackHealth] = []
    rng = random.Random(3)

    async def one(pack_id: bytes) -> None:
        async with limiter:
            owner = KEYS.identity.public_key
            found, _ = await survey_pack(owner_dht, pack_id, owner, rng, TIMEOUT, patience)
            healths.append(PackHealth.of(pack_id, found))

    async with trio.open_nursery() as nursery:
        for pack_id in pack_ids:
            nursery.start_soon(one, pack_id)
    return healths


async def test_a_check_with_hung_holders_costs_one_stall_not_one_timeout_per_pack(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    mesh, _ = await equipped_mesh(nursery, 14, seed=31)
    pack_ids = [(await place_pack(mesh, 30_000))[1] for _ in range(PACKS)]
    dht = mesh.peers[0].peer.dht

    began = trio.current_time()
    calm = await _check_all(dht, pack_ids, Patience())
    undisturbed = trio.current_time() - began
    assert all(h.live == h.n == 10 for h in calm)

    # Two peers near the first pack hang: each holds a share of most packs in a
    # 13-holder mesh, and each lookup would ask them.
    hung = by_distance(mesh, pack_ids[0])[:2]
    mesh.network.partition({p.address for p in hung})
    patience = Patience()
    began = trio.current_time()
    healths = await _check_all(dht, pack_ids, patience)
    disturbed = trio.current_time() - began

    rpc = dht.config.rpc_timeout
    # Before: ceil(PACKS / PARALLEL) lookups in a row, each waiting out the RPC timeout.
    assert disturbed <= undisturbed + SURVEY_STALL.floor + 1.0, (undisturbed, disturbed, rpc)
    assert disturbed < (PACKS / PARALLEL) * rpc
    assert patience.hung == {p.node_id for p in hung}
    held_by_hung = sum(1 for h in healths if h.live < h.n)
    assert held_by_hung >= PACKS // 2  # their shares counted as missing...
    assert all(h.recoverable and h.live >= h.n - 2 for h in healths)  # ...and only theirs


async def test_a_holder_that_hung_is_asked_again_once_its_memory_fades(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Passed over for `remember` seconds, then asked: a holder back from a hang counts again."""
    mesh, _ = await equipped_mesh(nursery, 14, seed=32)
    pack_ids = [(await place_pack(mesh, 30_000))[1] for _ in range(4)]
    dht = mesh.peers[0].peer.dht
    hung = by_distance(mesh, pack_ids[0])[:1]
    mesh.network.partition({p.address for p in hung})
    patience = Patience()
    first = await _check_all(dht, pack_ids[:1], patience)
    assert first[0].live == 9 and patience.hung == {hung[0].node_id}

    mesh.network.heal()
    contact = Contact(hung[0].node_id, *hung[0].address)
    assert patience.passed_over(dht, contact)
    await trio.sleep(SURVEY_STALL.remember + 1)
    assert not patience.passed_over(dht, contact)
    again = await _check_all(dht, pack_ids[:1], patience)
    assert again[0].live == 10
