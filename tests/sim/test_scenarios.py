"""Every scenario end to end, small: tens of peers, a simulated day, its report written.

The invariants are the harness's promises: no pack lost while k of its shares
stay live, never two shares of one pack on one peer, no corrupted share ever
taken for good data, and every snapshot restorable once the network heals.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.simulations.catalog import SCENARIOS, flat, run_named
from p2pbackup.simulations.mesh import SIM_DHT
from p2pbackup.simulations.report import WALL_FIELDS, reproducible, write_report

SMALL = {"peers": 30, "packs": 10, "days": 1.0, "audit_hours": 2.0}
STORAGE = [name for name in SCENARIOS if name != "lookups"]

# What each scenario must have done for its run to mean anything.
DID_ITS_THING = {
    "repair": lambda m: m["crashes"] == 12 and m["joins"] == 6 and m["repairs"] > 0,
    "churn": lambda m: m["leaves"] > 0 and m["returns"] > 0,
    "correlated-failure": lambda m: m["site_peers"] == 5 and m["repairs"] > 0,
    "partition": lambda m: m["snapshots_written"] == 3 and m["index_merged"],
    "disk-loss": lambda m: m["disks_lost"] >= 5 and m["repairs"] > 0,
    "flash-crowd": lambda m: m["joined"] >= 29 and m["handed_off"] > 0,
    "hostile": lambda m: (
        sum(m[f"hostile_{k}"] for k in ("drop", "corrupt", "lie", "steal", "squat")) == 5
        and m["squat_beside_owner"] > 0
    ),
    "capacity": lambda m: m["smallest_disk"] < m["largest_disk"] and m["crashed"] == 2,
}


@pytest.mark.parametrize("name", STORAGE)
def test_scenario_keeps_its_invariants_and_writes_its_report(name: str, tmp_path: Path) -> None:
    result = run_named(name, 3, dict(SMALL))
    metrics = result["metrics"]
    assert DID_ITS_THING[name](metrics), metrics
    assert metrics["packs_lost"] == 0
    assert metrics["min_live_shares"] >= metrics["k"]
    assert metrics["samples_with_two_shares_on_one_peer"] == 0
    assert metrics["restore_packs_corrupt"] == 0
    assert metrics["snapshots_restorable_at_end"] == metrics["snapshots"]
    assert len(result["series"]["hours"]) >= 24
    written = {p.name for p in write_report(result, tmp_path)}
    assert {"result.json", "report.md", "live_shares.png", "restorable.png"} <= written
    assert json.loads((tmp_path / "result.json").read_text())["metrics"] == metrics


def test_lookups_find_the_closest_peers_and_report_hops(tmp_path: Path) -> None:
    result = run_named("lookups", 2, {"peers": 60, "lookups": 40})
    assert result["metrics"]["found_all_k_closest"] >= 0.9
    assert "lookups.png" in {p.name for p in write_report(result, tmp_path)}


def test_lookups_measure_the_mesh_before_its_first_refresh_round() -> None:
    # Ten batches ten minutes apart spanned hours of upkeep that cost more than the
    # lookups at 10,000 peers and told nothing about them (decision 0055).
    result = run_named("lookups", 3, {"peers": 30, "lookups": 200})
    assert len(result["series"]["hours"]) == 10
    first_refresh = 0.9 * SIM_DHT.refresh_interval  # the earliest a refresh walk starts
    assert result["metrics"]["simulated_seconds"] < first_refresh
    assert result["metrics"]["found_all_k_closest"] == 1.0


def _run(seed: int) -> dict[str, Any]:
    return reproducible(run_named("churn", seed, {"peers": 20, "packs": 10, "days": 1.0}))


def test_another_seed_gives_another_run() -> None:
    first, other = _run(5), _run(6)
    assert json.dumps(first, sort_keys=True) != json.dumps(other, sort_keys=True)
    # The runs themselves differ, not only their ids: what was sent, or what was live.
    assert first["series"]["live_share_counts"] != other["series"]["live_share_counts"] or (
        first["metrics"]["messages_by_type"] != other["metrics"]["messages_by_type"]
    )


# The smallest run of each scenario in which its events still happen and repair
# follows them: churn and repair need two days for a few departures and rebuilds.
REPLAY_SIZE = {name: ["--peers", "20", "--packs", "10", "--days", "1"] for name in STORAGE}
REPLAY_SIZE["churn"] = ["--peers", "20", "--packs", "10", "--days", "2"]
REPLAY_SIZE["repair"] = ["--peers", "20", "--packs", "10", "--days", "2"]
REPLAY_SIZE["lookups"] = ["--peers", "20", "--lookups", "20"]


def _simulate(name: str, out: Path) -> subprocess.Popen[str]:
    """`p2pbackup simulate NAME --seed 5 --json`, as a user runs it, in a process of its own."""
    command = [sys.executable, "-m", "p2pbackup.cli.app", "simulate", name, "--seed", "5"]
    return subprocess.Popen(
        [*command, "--json", "--out", str(out), *REPLAY_SIZE[name]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},  # this process hashes at random
    )


def _simulate_here(name: str, out: Path) -> list[tuple[str, Any]]:
    """The same run in this process, after others: other memory addresses, other hashes."""
    args = iter(REPLAY_SIZE[name])
    options = {
        flag[2:]: float(value) if flag == "--days" else int(value)
        for flag, value in zip(args, args, strict=True)
    }
    result = run_named(name, 5, options)
    write_report(result, out)
    return [(k, v) for k, v in flat(result).items() if k not in WALL_FIELDS]


def _written(out: Path) -> dict[str, bytes]:
    """The report folder but for its wall-clock timing (timing.json, report.md's last line)."""
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "timing.json"}
    files["report.md"] = files["report.md"].rstrip(b"\n").rsplit(b"\n", 1)[0]
    return files


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_one_seed_replays_the_same_json_and_report(name: str, tmp_path: Path) -> None:
    run = _simulate(name, tmp_path / "cli")
    here = _simulate_here(name, tmp_path / "here")
    printed, errors = run.communicate(timeout=240)
    assert run.returncode == 0, errors
    summary = json.loads(printed)
    assert summary.pop("report") == str(tmp_path / "cli" / "report.md")
    assert [(k, v) for k, v in summary.items() if k not in WALL_FIELDS] == here
    written = _written(tmp_path / "cli")
    assert {"result.json", "report.md", "lookups.png"} <= set(written)
    assert written == _written(tmp_path / "here")


def test_flat_output_names_the_figures_scripts_read() -> None:
    result = run_named("repair", 1, {"peers": 20, "packs": 5, "days": 0.5, "audit_hours": 1.0})
    out = flat(result)
    for key in (
        "packs_lost",
        "min_live_shares",
        "repairs",
        "repair_bytes",
        "repair_bytes_per_lost_byte",
        "audits",
        "wall_seconds",
    ):
        assert key in out


@pytest.mark.slow
@pytest.mark.timeout(900)  # a hang guard: two minutes alone, four beside a busy worker
def test_a_month_of_churn_with_the_owner_gone_loses_nothing() -> None:
    """The maintenance acceptance run: 100 peers, 200 packs, 30 days, 40 crashes
    some hours apart and 20 joins, the owner offline throughout."""
    result = run_named("repair", 1, {"peers": 100, "packs": 200, "days": 30.0})
    m = result["metrics"]
    assert (m["crashes"], m["joins"]) == (40, 20)
    assert m["packs_lost"] == 0
    assert m["packs_at_n_at_end"] == 200  # every pack back to n live shares
    assert m["samples_with_two_shares_on_one_peer"] == 0
    assert m["snapshots_restorable_at_end"] == m["snapshots"]


def test_simulate_refuses_an_unwritable_report_folder_before_running() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "p2pbackup.cli.app",
            "simulate",
            "lookups",
            "--out",
            "/proc/no/such",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "cannot write the report to /proc/no/such" in run.stderr
    assert "Traceback" not in run.stderr
