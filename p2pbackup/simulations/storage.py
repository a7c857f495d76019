"""Storage on a simulated mesh: share stores, holders and maintenance loops on sim peers.

The same `ShareHolder` and `Maintainer` as `serve`, on memory stores and the
virtual clock, so scenarios and tests exercise the code a real peer runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import trio

from p2pbackup.base.offload import inline
from p2pbackup.maintenance.config import MaintenanceConfig
from p2pbackup.maintenance.maintainer import Maintainer
from p2pbackup.shares.audit_log import AuditLog
from p2pbackup.shares.fetch_rules import SiblingCheck
from p2pbackup.shares.holder import HOLDER_REQUESTS, ShareHolder
from p2pbackup.simulations.mesh import SimMesh, SimPeer
from p2pbackup.store import MemoryShareStore

# Virtual time starts at 0; leases and descriptors want a wall-clock-like epoch.
EPOCH = 1_700_000_000.0


def virtual_now() -> float:
    return EPOCH + trio.current_time()


@dataclass
class StorageMesh:
    """Which sim peer keeps which store, and the maintenance loop each one runs."""

    mesh: SimMesh
    config: MaintenanceConfig
    stores: dict[bytes, MemoryShareStore] = field(default_factory=dict)
    maintainers: dict[bytes, Maintainer] = field(default_factory=dict)
    audit_logs: dict[bytes, AuditLog] = field(default_factory=dict)
    lost_bytes: int = 0  # share bytes that went down with crashed peers

    def equip(self, sim_peer: SimPeer, capacity: int = 2**40) -> MemoryShareStore:
        """A share store and holder on the peer, as `serve` gives it."""
        self.stores[sim_peer.node_id] = MemoryShareStore(capacity)
        self.attach(sim_peer)
        return self.stores[sim_peer.node_id]

    def attach(self, sim_peer: SimPeer) -> None:
        """A holder for the peer's store (kept across restarts, like a disk)."""
        audit_log = AuditLog()
        store = self.stores[sim_peer.node_id]
        # Seeded from the node id, as the maintainer is: a run replays from its seed.
        siblings = SiblingCheck(sim_peer.peer.dht, random.Random(b"siblings" + sim_peer.node_id))
        holder = ShareHolder(
            store, run_sync=inline, now=virtual_now, audit_log=audit_log, siblings=siblings
        )
        for kind in HOLDER_REQUESTS:
            sim_peer.peer.add_handler(kind, holder.handle)
        self.audit_logs[sim_peer.node_id] = audit_log

    def maintain(self, sim_peer: SimPeer) -> Maintainer:
        maintainer = Maintainer(
            sim_peer.peer.dht,
            self.stores[sim_peer.node_id],
            self.config,
            random.Random(sim_peer.node_id),
            run_sync=inline,
            now=virtual_now,
            audit_log=self.audit_logs[sim_peer.node_id],
        )
        sim_peer.peer.add_task(maintainer.run)
        self.maintainers[sim_peer.node_id] = maintainer
        return maintainer

    def crash(self, sim_peer: SimPeer) -> None:
        store = self.stores.get(sim_peer.node_id)
        if store is not None:
            self.lost_bytes += sum(info.size for info in store.list_shares())
        self.mesh.crash(sim_peer)

    def live_stores(self) -> list[MemoryShareStore]:
        return [self.stores[p.node_id] for p in self.mesh.live() if p.node_id in self.stores]

    def held_bytes(self) -> int:
        return sum(store.used_bytes for store in self.live_stores())
