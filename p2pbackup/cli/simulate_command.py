"""`simulate`: a scenario of the same peer code on the simulated network and virtual
clock, its summary on the terminal and its report in a folder."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer

from p2pbackup.cli import render
from p2pbackup.cli.common import JSON_OPTION, emit, user_errors
from p2pbackup.errors import P2PBackupError


@user_errors
def simulate(
    scenario: str = typer.Argument(None, help="Scenario name; see --list."),
    peers: int = typer.Option(None, "--peers", min=2, help="Number of peers."),
    days: float = typer.Option(None, "--days", min=0.01, help="Simulated days."),
    packs: int = typer.Option(None, "--packs", min=1, help="Packs the owner backs up."),
    lookups: int = typer.Option(None, "--lookups", min=1, help="Lookups to run (lookups)."),
    relayed: float = typer.Option(
        None,
        "--relayed",
        min=0.0,
        max=0.9,
        metavar="SHARE",
        help="Share of peers behind a NAT, reached only through relays (storage scenarios).",
    ),
    seed: int = typer.Option(1, "--seed", help="Seed: the same seed replays the same run."),
    out: Path = typer.Option(
        None,
        "--out",
        metavar="DIR",
        help="Report folder (default: sim-reports/SCENARIO-seedS).",
    ),
    as_json: bool = JSON_OPTION,
    list_scenarios: bool = typer.Option(False, "--list", help="List the scenarios."),
) -> None:
    """Run a scenario on the simulated network and virtual clock; write its report."""
    from p2pbackup.simulations.catalog import SCENARIOS, default_out, flat, run_named
    from p2pbackup.simulations.report import write_last_report
    from p2pbackup.simulations.world import stderr_progress

    if list_scenarios or scenario is None:
        for name, entry in SCENARIOS.items():
            typer.echo(f"{name:20} {entry.summary}")
        return
    # Simulated peers log as real ones do; a hostile run's rejected shares are
    # findings for the report, not warnings for the terminal.
    logging.getLogger("p2pbackup").setLevel(logging.ERROR)
    options = {"peers": peers, "lookups": lookups, "packs": packs, "days": days, "relayed": relayed}
    chosen = {k: v for k, v in options.items() if v is not None}
    if scenario not in SCENARIOS:
        raise P2PBackupError(
            f"unknown scenario {scenario!r}; `p2pbackup simulate --list` names them"
        )
    folder = out if out is not None else default_out(scenario, seed)
    try:  # before the run, not after minutes of it
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise P2PBackupError(f"cannot write the report to {folder}: {exc.strerror}") from None
    quiet = as_json and not sys.stderr.isatty()  # a terminal watching a script sees progress
    result = run_named(scenario, seed, chosen, None if quiet else stderr_progress)
    write_last_report(result, folder)
    summary = {**flat(result), "report": str(folder / "report.md")}
    emit(summary, as_json, lambda r: render.table_text(r, 34))
