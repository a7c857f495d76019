"""Durability and repair when a third of the peers sit behind NATs, reached only through
relays: the same relay code as on TCP, on the simulator (decisions 0040, 0042)."""

from __future__ import annotations

import pytest

from p2pbackup.simulations.catalog import run_named

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_mesh_with_relayed_peers_repairs_a_days_churn_and_loses_nothing() -> None:
    options = {"peers": 40, "packs": 10, "days": 1.0, "audit_hours": 2.0, "relayed": 0.3}
    result = run_named("repair", 4, options)
    m = result["metrics"]
    assert m["crashes"] > 0 and m["repairs"] > 0, m
    assert m["packs_lost"] == 0
    assert m["min_live_shares"] >= m["k"]
    assert m["snapshots_restorable_at_end"] == m["snapshots"]
    assert m["relayed_peers"] >= 8
    assert m["shares_on_relayed_peers"] > 0  # they were checked through relays, and hold
