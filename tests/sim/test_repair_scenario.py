"""The `repair` scenario end to end, small: its invariants and its figures."""

from __future__ import annotations

from simulations.catalog import run_named


def test_packs_survive_churn_with_the_owner_gone() -> None:
    result = run_named("repair", 3, {"peers": 30, "packs": 12, "days": 1.0, "audit_hours": 3.0})
    assert result["crashes"] == 12 and result["joins"] == 6
    assert result["packs_lost"] == 0
    assert result["min_live_shares"] >= result["k"]
    assert result["packs_at_n_at_end"] == 12  # every pack back to n live shares
    assert result["samples_with_two_shares_on_one_peer"] == 0
    assert result["repairs"] > 0 and result["repair_bytes"] > 0
    assert result["repair_bytes_per_lost_byte"] > 0
    assert result["audits"] > 0
