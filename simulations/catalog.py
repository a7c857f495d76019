"""The named scenarios `p2pbackup simulate` knows, each with a one-line summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulations.lookups import LookupsParams, run_lookups
from simulations.repair import RepairParams, run_repair
from simulations.runner import run_scenario


@dataclass(frozen=True)
class Scenario:
    summary: str
    params: type[Any]
    run: Callable[[Any], Any]


SCENARIOS: dict[str, Scenario] = {
    "lookups": Scenario(
        "do iterative lookups find the true k closest peers, and in how many hops?",
        LookupsParams,
        run_lookups,
    ),
    "repair": Scenario(
        "with the owner gone, do packs survive a month of crashes and joins, at what cost?",
        RepairParams,
        run_repair,
    ),
}


def run_named(name: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    from p2pbackup.errors import P2PBackupError

    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise P2PBackupError(f"unknown scenario {name!r}; `p2pbackup simulate --list` names them")
    fields = {f.name for f in dataclasses.fields(scenario.params)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise P2PBackupError(f"scenario {name} takes no --{unknown[0]}")
    params = scenario.params(seed=seed, **options)
    return run_scenario(lambda: scenario.run(params), seed)
