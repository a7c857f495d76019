"""The Markov estimate beside a scenario's measured loss: the rates fed in, the verdict out."""

from __future__ import annotations

from typing import Any

from p2pbackup.simulations.markov import disagreement, estimate
from p2pbackup.simulations.world import World, WorldParams


def repair_rate(params: WorldParams, lost_after: int = 2) -> float:
    """Per hour: a lost holder is noticed after `lost_after` rounds, then rebuilt."""
    return 1.0 / ((lost_after + 0.5) * params.audit_hours)


def world_model(world: World, params: WorldParams, failure_rate: float) -> dict[str, Any]:
    """The model of this world's share sets at `failure_rate` per peer-hour, over the run,
    with every missing share rebuilt once noticed."""
    return estimate(
        world.redundancy.k,
        world.redundancy.n,
        world.redundancy.n,
        failure_rate,
        repair_rate(params),
        params.days * 24,
        len(world.packs),
    )


def with_model(result: dict[str, Any]) -> dict[str, Any]:
    """Move the model out of the metrics and say whether it agrees with the run."""
    model = result["metrics"].pop("model")
    model["disagreement"] = disagreement(
        result["metrics"]["packs_lost"], model["expected_packs_lost"]
    )
    result["model"] = model
    return result
