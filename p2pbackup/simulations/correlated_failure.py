"""Scenario `correlated-failure`: a fifth of the peers, one "site", vanish at once.

Placement by XOR distance ignores where peers are, so a site's peers hold a
random fifth of every share set: a pack is lost only if more than n-k of its
n holders sat in that site (for 3-of-10, about one pack in 13,000). The run
shows how deep the sets dip, how fast repair refills them, and what it costs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.simulations.storage_run import StorageScenario
from p2pbackup.simulations.world import HOUR, World, WorldParams


@dataclass(frozen=True)
class CorrelatedParams(WorldParams):
    packs: int = 200
    days: float = 2.0
    site: float = 0.2
    at_hours: float = 6.0


async def drive(world: World, params: CorrelatedParams, rng: random.Random) -> dict[str, Any]:
    await trio.sleep(params.at_hours * HOUR)
    peers = world.storage_peers()
    site = rng.sample(peers, int(params.site * len(peers)))
    for sim_peer in site:
        world.crash(sim_peer)
    world.note(f"site of {len(site)} peers gone at hour {params.at_hours:g}")
    return {"site_peers": len(site)}


SCENARIO = StorageScenario(
    "correlated-failure",
    "a fifth of the peers (one site) vanish at once: how deep is the dip, how fast the repair?",
    CorrelatedParams,
    salt=0x517E,
    drive=drive,
)
