"""Scenario `churn`: peers come and go in heavy-tailed sessions, as measured in deployed DHTs.

Every storage peer alternates online sessions and offline gaps. Session
lengths follow a Weibull distribution of shape 0.5 (the heavy tail measured
in KAD and BitTorrent's DHT: most sessions short, a few very long), gaps are
exponential, and a small share of departures are for good (the disk goes
with them). Shares of a peer that is away are not live; repair must tell a
holder that comes back from one that is gone. The report sets the measured
loss beside a Markov model fed with the same failure and repair rates.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.simulations.model_check import world_model
from p2pbackup.simulations.storage_run import StorageScenario, event_window
from p2pbackup.simulations.world import HOUR, SimPeer, World, WorldParams


@dataclass(frozen=True)
class ChurnParams(WorldParams):
    days: float = 3.0
    median_session_hours: float = 12.0
    mean_gap_hours: float = 4.0
    permanent: float = 0.05  # share of departures that are for good


def session_hours(rng: random.Random, median: float) -> float:
    # Weibull with shape 0.5: median = scale * ln(2)^(1/0.5).
    return rng.weibullvariate(median / math.log(2) ** 2, 0.5)


async def drive(world: World, params: ChurnParams, rng: random.Random) -> dict[str, Any]:
    window_end = trio.current_time() + event_window(params)
    departures = {"leaves": 0, "returns": 0, "gone": 0}

    async def life(sim_peer: SimPeer) -> None:
        while True:
            await trio.sleep(session_hours(rng, params.median_session_hours) * HOUR)
            if trio.current_time() >= window_end:
                return
            if rng.random() < params.permanent:
                world.crash(sim_peer)
                departures["gone"] += 1
                return
            world.leave(sim_peer)
            departures["leaves"] += 1
            await trio.sleep(rng.expovariate(1.0 / params.mean_gap_hours) * HOUR)
            await world.come_back(sim_peer)
            departures["returns"] += 1

    for sim_peer in world.storage_peers():
        world.nursery.start_soon(life, sim_peer)
    await trio.sleep_until(window_end)
    peer_hours = len(world.storage_peers()) * (window_end / HOUR)
    failure_rate = departures["gone"] / max(peer_hours, 1.0)
    return {**departures, "model": world_model(world, params, failure_rate)}


SCENARIO = StorageScenario(
    "churn",
    "heavy-tailed sessions (Weibull 0.5): do packs survive peers that come and go?",
    ChurnParams,
    salt=0xC4C4,
    drive=drive,
)
