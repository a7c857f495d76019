"""Human-readable summaries: one of a thing reads in the singular."""

from __future__ import annotations

from p2pbackup.cli.render import check_text, prune_text


def test_one_pack_and_one_snapshot_read_in_the_singular() -> None:
    pruned = {
        "dry_run": False,
        "snapshots": 1,
        "packs_kept": 1,
        "packs_released": 2,
        "packs_repacked": 1,
        "bytes_repacked": 1_200_000,
        "packs_written": 2,
        "shares_dropped": 20,
    }
    assert prune_text(pruned).splitlines() == [
        "1 pack kept whole for 1 snapshot",
        "repacked 1 mostly unused pack (1.14 MiB in use) into 2 new packs",
        "released 2 packs (20 shares dropped at once; the rest go when their leases run out)",
    ]
    health = {
        "packs": 2,
        "snapshots": 1,
        "healthy": 2,
        "degraded": 0,
        "unrecoverable": 0,
        "min_live_shares": 10,
    }
    assert check_text(health).startswith("2 packs in 1 snapshot: 2 with every share")
