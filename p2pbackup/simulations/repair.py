"""Scenario `repair`: do packs survive a month of churn with their owner gone?

An owner places P packs (k of n shares each) on a mesh of N peers and goes
offline for good. Over D simulated days, peers crash one at a time at random
moments (40% of N by default) and new peers join (20% of N), while every
storage peer runs the same maintenance loop as `serve`: audits, repair,
rebalancing. The run samples every pack's live shares each simulated hour
and reports whether any pack fell under k (lost), the lowest live-share count
seen, whether any peer ever held two shares of one pack, and what repair cost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import trio

from p2pbackup.simulations.storage_run import StorageScenario, event_window
from p2pbackup.simulations.world import World, WorldParams

MONTH_DAYS = 30.0


@dataclass(frozen=True)
class RepairParams(WorldParams):
    packs: int = 200
    days: float = 30.0
    # 0: thirty audit rounds in the run, at most daily, as a home mesh might audit
    # over a month; a shorter run is that month sped up, not its crashes all at once.
    audit_hours: float = 0.0
    crashes: int | None = None  # default: 40% of peers
    joins: int | None = None  # default: 20% of peers

    def __post_init__(self) -> None:
        if self.audit_hours <= 0:
            object.__setattr__(self, "audit_hours", min(24.0, self.days * 24.0 / MONTH_DAYS))


async def drive(world: World, params: RepairParams, rng: random.Random) -> dict[str, Any]:
    crashes = params.crashes if params.crashes is not None else params.peers * 2 // 5
    joins = params.joins if params.joins is not None else params.peers // 5
    window = event_window(params)
    events = sorted(
        [(rng.uniform(0, window), "crash") for _ in range(crashes)]
        + [(rng.uniform(0, window), "join") for _ in range(joins)]
    )
    start = trio.current_time()
    done = {"crashes": 0, "joins": 0}
    for at, kind in events:
        await trio.sleep_until(start + at)
        if kind == "crash":
            candidates = world.storage_peers()
            if len(candidates) > world.redundancy.n:
                world.crash(world.mesh.rng.choice(candidates))
                done["crashes"] += 1
        else:
            await world.join()
            done["joins"] += 1
    return done


SCENARIO = StorageScenario(
    "repair",
    "with the owner gone, do packs survive a month of crashes and joins, at what cost?",
    RepairParams,
    salt=0xC4A05,
    drive=drive,
)
