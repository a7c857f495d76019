"""Simulated meshes for tests: real peers, virtual time, seeded."""

from __future__ import annotations

import pytest
import trio

from p2pbackup.dht.config import DhtConfig
from p2pbackup.net.sim import seed_trio_scheduler
from p2pbackup.simulations.mesh import SimMesh

TEST_DHT = DhtConfig(rpc_timeout=2.0, refresh_interval=600.0, republish_interval=300.0)


@pytest.fixture(autouse=True)
def _seeded_scheduler() -> None:
    # Runs before pytest-trio starts the loop, so the event order is reproducible.
    seed_trio_scheduler(1234)


async def build_mesh(nursery: trio.Nursery, peers: int, seed: int) -> SimMesh:
    mesh = await SimMesh.create(nursery, seed, dht=TEST_DHT)
    await mesh.grow(peers)
    return mesh
