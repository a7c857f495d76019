"""Scenario `flash-crowd`: the mesh doubles in an hour.

As many new peers as the mesh has join within one hour. Many land closer to
pack ids than today's holders, so shares should move to them over the
following rounds (rebalancing) without any being rebuilt, and lookups should
keep finding the closest peers while routing tables catch up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.simulations.storage_run import StorageScenario
from p2pbackup.simulations.world import HOUR, World, WorldParams


@dataclass(frozen=True)
class FlashCrowdParams(WorldParams):
    days: float = 2.0
    at_hours: float = 6.0
    growth: float = 1.0  # newcomers as a share of the mesh


async def drive(world: World, params: FlashCrowdParams, rng: random.Random) -> dict[str, Any]:
    await trio.sleep(params.at_hours * HOUR)
    count = int(params.growth * len(world.mesh.live()))
    times = sorted(rng.uniform(0, HOUR) for _ in range(count))
    start = trio.current_time()

    async def arrive(at: float) -> None:
        await trio.sleep_until(start + at)
        await world.join()

    async with trio.open_nursery() as arrivals:
        for at in times:
            arrivals.start_soon(arrive, at)
    world.note(f"{count} peers joined within the hour")
    return {"joined": count}


SCENARIO = StorageScenario(
    "flash-crowd",
    "the mesh doubles in an hour: do shares move to the newcomers, and lookups keep up?",
    FlashCrowdParams,
    salt=0xF1A5,
    drive=drive,
)
