"""Scenario `capacity`: peers with unequal and small disks.

Disk sizes follow a log-normal spread (a few large, many small, some barely
able to take a share), with the whole mesh holding about twice what the
owner stores. Full peers refuse shares and placement moves on to the next
closest; a tenth of the peers then crash, so repair must find room too. The
report shows the storage each peer ends up with and its Gini coefficient.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.simulations.storage_run import StorageScenario, event_window
from p2pbackup.simulations.world import World, WorldParams


@dataclass(frozen=True)
class CapacityParams(WorldParams):
    packs: int = 200
    days: float = 2.0
    headroom: float = 2.0  # total capacity over the bytes stored
    spread: float = 1.0  # sigma of the log-normal disk sizes
    crashes: float = 0.1


def disk_sizes(params: CapacityParams) -> list[int]:
    """Log-normal sizes scaled so that they add up to `headroom` times what is stored."""
    rng = random.Random(params.seed ^ 0xCA9A)
    raw = [rng.lognormvariate(0.0, params.spread) for _ in range(params.peers)]
    share = -(-params.pack_bytes // 3) + 4096  # a share and its bookkeeping, roughly
    stored = params.packs * 10 * share
    scale = params.headroom * stored / sum(raw)
    return [int(r * scale) for r in raw]


async def drive(world: World, params: CapacityParams, rng: random.Random) -> dict[str, Any]:
    window = event_window(params)
    start = trio.current_time()
    victims = rng.sample(world.storage_peers(), int(params.crashes * len(world.storage_peers())))
    times = sorted(rng.uniform(0, window) for _ in victims)
    for at, sim_peer in zip(times, victims, strict=True):
        await trio.sleep_until(start + at)
        world.crash(sim_peer)
    full = sum(1 for s in world.storage.live_stores() if s.used_bytes > 0.9 * s.capacity)
    sizes = disk_sizes(params)
    return {
        "crashed": len(victims),
        "smallest_disk": min(sizes),
        "largest_disk": max(sizes),
        "peers_over_90_percent_full": full,
    }


SCENARIO = StorageScenario(
    "capacity",
    "unequal, small disks: do full peers pass shares on, and does repair still find room?",
    CapacityParams,
    salt=0xC2A5,
    drive=drive,
    disks=disk_sizes,
)
