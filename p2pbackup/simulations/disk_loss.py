"""Scenario `disk-loss`: peers come back with empty disks.

Over the run, each storage peer loses its disk at random (a third of them
by default): it goes offline for an hour, as for a reinstall, and returns
under the same id with nothing stored. Its shares are gone even though the
peer answers again, so audits, not liveness, must find the loss. The report
sets the measured loss beside the Markov model of a share set with the same
failure and repair rates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.simulations.model_check import world_model
from p2pbackup.simulations.storage_run import StorageScenario, event_window
from p2pbackup.simulations.world import HOUR, SimPeer, World, WorldParams


@dataclass(frozen=True)
class DiskLossParams(WorldParams):
    days: float = 3.0
    losses: float = 0.33  # share of storage peers whose disk is lost during the run
    offline_hours: float = 1.0


async def drive(world: World, params: DiskLossParams, rng: random.Random) -> dict[str, Any]:
    window = event_window(params)
    start = trio.current_time()
    victims = rng.sample(world.storage_peers(), int(params.losses * len(world.storage_peers())))
    events = sorted((rng.uniform(0, window), i) for i in range(len(victims)))

    async def lose(sim_peer: SimPeer) -> None:
        world.leave(sim_peer)
        await trio.sleep(params.offline_hours * HOUR)
        await world.come_back(sim_peer, empty=True)

    for at, i in events:
        await trio.sleep_until(start + at)
        world.nursery.start_soon(lose, victims[i])
    await trio.sleep_until(start + window)
    peer_hours = max(len(world.storage_peers()) * window / HOUR, 1.0)
    return {
        "disks_lost": len(victims),
        "model": world_model(world, params, len(victims) / peer_hours),
    }


SCENARIO = StorageScenario(
    "disk-loss",
    "peers return with empty disks: do audits find the loss and repair it in time?",
    DiskLossParams,
    salt=0xD15C,
    drive=drive,
)
