"""What the simulated-mesh tests build on: seeded meshes, share stores, placed packs.

Test modules import these and nothing from each other, so each test file can
be read, run or moved on its own. Everything random is drawn from a test's
seed (the mesh's own generator), so a failing test replays as it ran.
"""

from __future__ import annotations

import random

import trio

from p2pbackup.base.offload import inline
from p2pbackup.codec.packs import pack_id_of
from p2pbackup.crypto.keys import OwnerKeys
from p2pbackup.dht.config import DhtConfig
from p2pbackup.maintenance.config import MaintenanceConfig
from p2pbackup.shares.fetch_rules import SiblingCheck
from p2pbackup.shares.holder import HOLDER_REQUESTS, ShareHolder
from p2pbackup.shares.mesh_packs import MeshPackStore, Redundancy
from p2pbackup.simulations.mesh import SimMesh, SimPeer
from p2pbackup.simulations.storage import StorageMesh, virtual_now
from p2pbackup.store import MemoryShareStore

TEST_DHT = DhtConfig(rpc_timeout=2.0, refresh_interval=600.0, republish_interval=300.0)
KEYS = OwnerKeys.from_master(bytes(range(32)))

HOUR = 3_600
LEASE = 12 * HOUR
LEASE_KEYS = OwnerKeys.from_master(bytes(range(1, 33)))
# Maintenance for the storage tests: audits every two hours, light rounds in between.
STORAGE_CONFIG = MaintenanceConfig(
    audit_interval=2 * HOUR, request_timeout=5.0, share_timeout=10.0, light_rounds=2
)
QUIET_DHT = DhtConfig(rpc_timeout=2.0, refresh_interval=6 * HOUR, republish_interval=6 * HOUR)


async def build_mesh(nursery: trio.Nursery, peers: int, seed: int) -> SimMesh:
    mesh = await SimMesh.create(nursery, seed, dht=TEST_DHT)
    await mesh.grow(peers)
    return mesh


def equip(mesh: SimMesh, capacity: int = 2**30) -> dict[bytes, MemoryShareStore]:
    """Give every peer a share store, as `serve` does."""
    stores = {}
    for sim_peer in mesh.peers:
        stores[sim_peer.node_id] = store = MemoryShareStore(capacity)
        hold(sim_peer, store)
    return stores


async def equipped_mesh(
    nursery: trio.Nursery, peers: int, seed: int
) -> tuple[SimMesh, dict[bytes, MemoryShareStore]]:
    """A mesh of `peers` from `seed`, every peer with a share store; the stores by node id."""
    mesh = await build_mesh(nursery, peers, seed)
    return mesh, equip(mesh)


def hold(sim_peer: SimPeer, store: MemoryShareStore) -> None:
    """The peer answers share requests from `store`; it challenges siblings that fetch."""
    siblings = SiblingCheck(sim_peer.peer.dht, random.Random(b"siblings" + sim_peer.node_id))
    holder = ShareHolder(store, run_sync=inline, siblings=siblings)
    for kind in HOLDER_REQUESTS:
        sim_peer.peer.add_handler(kind, holder.handle)


def owner_store(sim_peer: SimPeer) -> MeshPackStore:
    return MeshPackStore(
        sim_peer.peer.dht, KEYS.identity, Redundancy(), share_timeout=5.0, run_sync=inline
    )


def new_pack(mesh: SimMesh, size: int) -> tuple[bytes, bytes]:
    """A pack's bytes and id, drawn from the mesh's seeded generator."""
    data = mesh.rng.randbytes(size)
    return data, pack_id_of(data)


async def place_pack(mesh: SimMesh, size: int) -> tuple[bytes, bytes]:
    """The first peer backs up a new pack of `size` bytes; its bytes and id."""
    data, pack_id = new_pack(mesh, size)
    await owner_store(mesh.peers[0]).put(pack_id, data)
    return data, pack_id


def holders(stores: dict[bytes, MemoryShareStore], pack_id: bytes) -> dict[bytes, list[int]]:
    return {nid: s.indices(pack_id) for nid, s in stores.items() if s.indices(pack_id)}


def by_id(mesh: SimMesh) -> dict[bytes, SimPeer]:
    return {p.node_id: p for p in mesh.peers}


def by_distance(mesh: SimMesh, pack_id: bytes) -> list[SimPeer]:
    """Every peer but the owner (the first), closest to the pack first: placement's order."""
    target = int.from_bytes(pack_id, "big")
    return sorted(mesh.peers[1:], key=lambda p: int.from_bytes(p.node_id, "big") ^ target)


async def placed(
    nursery: trio.Nursery,
    seed: int,
    packs: int,
    config: MaintenanceConfig = STORAGE_CONFIG,
    lease: int = LEASE,
) -> tuple[StorageMesh, list[bytes]]:
    """20 peers with storage and maintenance; the first places `packs` packs, 12 h leases."""
    mesh = await SimMesh.create(nursery, seed, dht=QUIET_DHT)
    await mesh.grow(20)
    storage = StorageMesh(mesh, config)
    owner = mesh.peers[0]  # holds none of its own shares, as on a real peer
    for sim_peer in mesh.peers[1:]:
        storage.equip(sim_peer)
    store = MeshPackStore(
        owner.peer.dht,
        LEASE_KEYS.identity,
        Redundancy(lease_seconds=lease),
        share_timeout=10.0,
        run_sync=inline,
        now=virtual_now,
    )
    pack_ids = []
    data_rng = random.Random(seed)
    for _ in range(packs):
        data = data_rng.randbytes(40_000)
        pack_ids.append(pack_id_of(data))
        await store.put(pack_ids[-1], data)
    for sim_peer in mesh.peers[1:]:
        storage.maintain(sim_peer)
    return storage, pack_ids
