"""The named scenarios `p2pbackup simulate` knows, each with a one-line summary."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pbackup.simulations import (
    capacity,
    churn,
    correlated_failure,
    disk_loss,
    flash_crowd,
    hostile,
    lookups,
    partition,
    repair,
)
from p2pbackup.simulations.runner import run_scenario
from p2pbackup.simulations.storage_run import StorageScenario
from p2pbackup.simulations.world import Progress


@dataclass(frozen=True)
class Scenario:
    summary: str
    params: type[Any]
    run: Callable[..., Any]


# Each storage scenario's file declares it whole; the order here is `--list`'s.
STORAGE: tuple[StorageScenario[Any], ...] = (
    repair.SCENARIO,
    churn.SCENARIO,
    correlated_failure.SCENARIO,
    partition.SCENARIO,
    disk_loss.SCENARIO,
    flash_crowd.SCENARIO,
    hostile.SCENARIO,
    capacity.SCENARIO,
)
SCENARIOS: dict[str, Scenario] = {
    "lookups": Scenario(lookups.SUMMARY, lookups.LookupsParams, lookups.run_lookups),
    **{s.name: Scenario(s.summary, s.params, s.run) for s in STORAGE},
}


def run_named(
    name: str, seed: int, options: dict[str, Any], progress: Progress | None = None
) -> dict[str, Any]:
    """Run a scenario by name; the result as its report is written from."""
    from p2pbackup.errors import P2PBackupError

    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise P2PBackupError(f"unknown scenario {name!r}; `p2pbackup simulate --list` names them")
    fields = {f.name for f in dataclasses.fields(scenario.params)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise P2PBackupError(f"scenario {name} takes no --{unknown[0]}")
    params = scenario.params(seed=seed, **options)
    return run_scenario(lambda: scenario.run(params, progress), seed)


def flat(result: dict[str, Any]) -> dict[str, Any]:
    """One level of keys for `--json` and the terminal: params, metrics, timing."""
    out = {"scenario": result["scenario"], "seed": result["seed"]}
    out.update(result.get("params", {}))
    out.update(result.get("metrics", {}))
    if result.get("model"):
        out["model_expected_packs_lost"] = result["model"]["expected_packs_lost"]
        out["model_disagreement"] = result["model"]["disagreement"]
    for key in ("wall_seconds", "sim_seconds_per_wall_second"):
        if key in result:
            out[key] = result[key]
    return out


def default_out(name: str, seed: int) -> Path:
    return Path("sim-reports") / f"{name}-seed{seed}"
