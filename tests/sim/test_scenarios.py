"""Every scenario end to end, small: tens of peers, a simulated day, its report written.

The invariants are the harness's promises: no pack lost while k of its shares
stay live, never two shares of one pack on one peer, no corrupted share ever
taken for good data, and every snapshot restorable once the network heals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.simulations.catalog import SCENARIOS, flat, run_named
from p2pbackup.simulations.report import reproducible, write_report

SMALL = {"peers": 30, "packs": 20, "days": 1.0, "audit_hours": 2.0}
STORAGE = [name for name in SCENARIOS if name != "lookups"]

# What each scenario must have done for its run to mean anything.
DID_ITS_THING = {
    "repair": lambda m: m["crashes"] == 12 and m["joins"] == 6 and m["repairs"] > 0,
    "churn": lambda m: m["leaves"] > 0 and m["returns"] > 0,
    "correlated-failure": lambda m: m["site_peers"] == 5 and m["repairs"] > 0,
    "partition": lambda m: m["snapshots_written"] == 3 and m["index_merged"],
    "disk-loss": lambda m: m["disks_lost"] >= 5 and m["repairs"] > 0,
    "flash-crowd": lambda m: m["joined"] >= 29 and m["handed_off"] > 0,
    "hostile": lambda m: m["hostile_drop"] + m["hostile_corrupt"] + m["hostile_lie"] == 5,
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


def _run(seed: int) -> dict[str, Any]:
    return reproducible(run_named("churn", seed, {"peers": 20, "packs": 10, "days": 1.0}))


def test_one_seed_replays_the_same_json_and_another_seed_does_not() -> None:
    first, again, other = _run(5), _run(5), _run(6)
    as_text = [json.dumps(r, sort_keys=True) for r in (first, again, other)]
    assert as_text[0] == as_text[1]
    assert as_text[0] != as_text[2]
    assert first["series"]["live_share_counts"] != other["series"]["live_share_counts"] or (
        first["metrics"]["messages"] != other["metrics"]["messages"]
    )


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
    import subprocess
    import sys

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
