"""The frame every storage scenario runs in: build, drive, heal, restore, report.

A scenario file declares a `StorageScenario`: its parameters, a summary
line and a `drive` coroutine with its events; this frame does the rest the
same way for all, so their reports compare: the owner backs up and (unless
the scenario keeps it) goes offline, every storage peer maintains its
shares, the sampler records each simulated hour, and after the last
simulated day the owner comes back and restores every snapshot through the
real restore path.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from p2pbackup.simulations.model_check import with_model
from p2pbackup.simulations.world import DAY, HOUR, Progress, World, WorldParams
from p2pbackup.simulations.world_result import finish, restore_all

P = TypeVar("P", bound=WorldParams)
Drive = Callable[[World], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class StorageScenario(Generic[P]):
    """What a storage scenario's file declares; `run` does the rest alike for all.

    `drive(world, params, rng)` plays the scenario's events and returns its own
    figures; a "model" among them is a Markov estimate, set beside the
    measured loss. `setup`, when given, turns peers before the owner backs up
    and returns figures too; `disks` gives each peer's disk size in bytes.
    The scenario's generator is seeded from the run's seed and its `salt`, so
    scenarios draw apart from each other and from the mesh.
    """

    name: str
    summary: str
    params: type[P]
    salt: int
    drive: Callable[[World, P, random.Random], Awaitable[dict[str, Any]]] | None = None
    setup: Callable[[World, P, random.Random], dict[str, Any]] | None = None
    disks: Callable[[P], list[int]] | None = None
    owner_stays: bool = False

    async def run(self, params: P, progress: Progress | None = None) -> dict[str, Any]:
        rng = random.Random(params.seed ^ self.salt)
        figures: dict[str, Any] = {}
        sizes = self.disks(params) if self.disks is not None else None

        def setup(world: World) -> None:
            if self.setup is not None:
                figures.update(self.setup(world, params, rng))

        async def drive(world: World) -> dict[str, Any]:
            if self.drive is not None:
                figures.update(await self.drive(world, params, rng))
            return figures

        result = await run_storage_scenario(
            self.name,
            self.summary,
            params,
            drive,
            capacity=None if sizes is None else sizes.__getitem__,
            setup=setup,
            owner_stays=self.owner_stays,
            progress=progress,
        )
        return with_model(result) if "model" in result["metrics"] else result


# After the scenario's last event the mesh gets this long to settle before the end.
SETTLE = 6 * HOUR


async def run_storage_scenario(
    name: str,
    summary: str,
    params: WorldParams,
    drive: Drive,
    *,
    capacity: Callable[[int], int] | None = None,
    setup: Callable[[World], None] | None = None,
    owner_stays: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the world, hand it to `drive` for the scenario's events, then heal and restore."""
    async with trio.open_nursery() as nursery:
        world = await World.build(
            nursery, params, capacity=capacity, setup=setup, progress=progress
        )
        world.note(f"{name}: {params.peers} peers, {len(world.packs)} packs placed")
        if not owner_stays:
            world.leave(world.owner)  # the owner's laptop is off from here on
        world.start_maintenance()
        began = trio.current_time()
        await nursery.start(world.sampler)
        extra = await drive(world)
        await trio.sleep_until(max(began + params.days * DAY, trio.current_time()))
        world.sample()
        if world.owner.node_id in world.away:
            await world.come_back(world.owner)
        extra.update(await restore_all(world, world.owner))
        result = finish(world, name, summary, extra)
        world.stop()
    return result


def event_window(params: WorldParams, audit_rounds: int = 4) -> float:
    """Seconds in which a scenario's events fall, leaving the rest of the run (a fifth,
    and at least four audit rounds) for repair to finish before the end.

    The events get at least the first half of the run: with no window they would
    all fall at its start, one correlated failure, or not at all.
    """
    run = params.days * DAY
    settle = max(run * 0.2, audit_rounds * params.audit_hours * HOUR, SETTLE)
    return run - min(settle, run / 2)
