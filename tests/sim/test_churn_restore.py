"""A restore that loses five of its eleven holders halfway finishes, on virtual time.

Holders vanish (crashed) or hang (cut off: requests go out and nothing comes
back) once the restore has written its first packs. The restore must finish
byte-identical, fetch no pack twice, count each lost holder as stalled at
most once, and take no longer than an undisturbed restore plus one stall
interval per lost holder: before, each pack after the loss waited out the
share timeout for the holders that no longer answered.
"""

from __future__ import annotations

import random
from pathlib import Path

import trio

from p2pbackup.backup.catalog import Catalog
from p2pbackup.codec.packstore import PackReceipt
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy
from p2pbackup.simulations.mesh import SimMesh
from tests.backup.fs import KEYS, backup, codec, restorer, snapshot_of, write
from tests.sim.helpers import QUIET_DHT, build_mesh, equip, inline

LOST = 5
LOSE_AFTER = 6  # packs restored before the holders go


class Counting:
    """The owner's pack store, counting gets per pack; calls `after` once `LOSE_AFTER`
    packs have come back."""

    def __init__(self, store: MeshPackStore, after: object = None) -> None:
        self.store = store
        self.gets: dict[bytes, int] = {}
        self.after = after
        self.returned = 0

    async def put(self, pack_id: bytes, data: bytes) -> PackReceipt:
        return await self.store.put(pack_id, data)

    async def get(self, pack_id: bytes, size_hint: int = 0) -> bytes:
        self.gets[pack_id] = self.gets.get(pack_id, 0) + 1
        data = await self.store.get(pack_id, size_hint)
        self.returned += 1
        if self.returned == LOSE_AFTER and callable(self.after):
            self.after()
        return data


async def test_a_restore_losing_five_holders_midway_finishes_without_waiting_out_timeouts(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    mesh = await SimMesh.create(nursery, 16, dht=QUIET_DHT)
    await mesh.grow(12)
    equip(mesh)
    owner = mesh.peers[0]
    store = MeshPackStore(
        owner.peer.dht,
        KEYS.identity,
        Redundancy(),
        share_timeout=30.0,
        run_sync=inline,
    )
    rng = random.Random(16)
    source = tmp_path / "src"
    for d in range(4):
        (source / f"d{d}").mkdir(parents=True)
    for i in range(40):
        write(source / f"d{i % 4}" / f"f{i}.bin", rng.randbytes(rng.randrange(20_000, 90_000)))
    blobs = codec()
    snapshot, _ = await backup(blobs, Catalog(tmp_path / "catalog.db"), store, source)

    calm = Counting(store)
    began = trio.current_time()
    await restorer(blobs, calm).run(snapshot, tmp_path / "calm")
    undisturbed = trio.current_time() - began
    assert snapshot_of(tmp_path / "calm" / "src") == snapshot_of(source)

    lost = random.Random(17).sample(mesh.peers[1:], LOST)
    stall = store.fetch_pace.stall_after()

    def lose() -> None:
        for sim_peer in lost[:3]:
            mesh.crash(sim_peer)  # gone
        mesh.network.partition({p.address for p in lost[3:]})  # hung

    churned = Counting(store, lose)
    began = trio.current_time()
    stats = await restorer(blobs, churned).run(snapshot, tmp_path / "churn")
    disturbed = trio.current_time() - began

    assert not stats.failures
    assert snapshot_of(tmp_path / "churn" / "src") == snapshot_of(source)
    assert len(churned.gets) > 3 * LOSE_AFTER  # most packs came after the loss
    assert set(churned.gets.values()) == {1}  # no pack fetched twice
    assert all(store.holders.stalls.get(p.node_id, 0) <= 1 for p in lost)
    assert disturbed <= undisturbed + LOST * stall, (undisturbed, disturbed, stall)
    mesh.stop()


async def test_a_lookup_passes_over_the_peers_it_is_told_to_skip_without_waiting(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Peers that hang cost a lookup its RPC timeout; ones the caller knows hang are
    skipped unasked, and the walk ends without them, as soon as without the hang."""
    mesh = await build_mesh(nursery, 40, seed=6)
    source, target = mesh.peers[0], bytes(20)
    hung = [p for p in mesh.peers[1:] if p.node_id in mesh.true_closest(target, 6)][:3]
    mesh.network.partition({p.address for p in hung})
    known = {p.node_id for p in hung}
    began = trio.current_time()
    outcome = await source.peer.dht.lookup(target, skip=lambda c: c.node_id in known)
    took = trio.current_time() - began
    assert not known & {c.node_id for c in outcome.contacts}
    assert took < source.peer.dht.config.rpc_timeout  # nobody's timeout was waited out


async def test_a_peer_that_timed_out_is_passed_over_until_it_shows_life(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Every lookup near a hung peer waited out the RPC timeout for it, for as long as
    it hung, since the peers that still knew it kept naming it. The first waits; the
    next ones, for `silent_backoff` seconds, do not; once it answers, it counts again."""
    mesh = await build_mesh(nursery, 40, seed=7)
    source, target = mesh.peers[0], bytes(20)
    dht = source.peer.dht
    hung = [p for p in mesh.peers[1:] if p.node_id in mesh.true_closest(target, 6)][:2]
    mesh.network.partition({p.address for p in hung})
    rpc = dht.config.rpc_timeout

    began = trio.current_time()
    first = await dht.lookup(target)
    assert trio.current_time() - began >= rpc  # it waited for them once
    assert not {p.node_id for p in hung} & {c.node_id for c in first.contacts}
    began = trio.current_time()
    second = await dht.lookup(target)
    assert trio.current_time() - began < rpc  # and not again
    assert [c.node_id for c in second.contacts] == [c.node_id for c in first.contacts]

    mesh.network.heal()
    await trio.sleep(dht.config.silent_backoff)
    healed = await dht.lookup(target)
    assert {p.node_id for p in hung} <= {c.node_id for c in healed.contacts}
