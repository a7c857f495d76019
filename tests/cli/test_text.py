"""Human-readable summaries: one of a thing reads in the singular."""

from __future__ import annotations

from p2pbackup.cli.render import check_text, prune_text, short_packs_text


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


def test_a_check_names_the_peers_that_hung_and_what_that_cost() -> None:
    health = {
        "packs": 3,
        "snapshots": 1,
        "healthy": 0,
        "degraded": 3,
        "unrecoverable": 0,
        "min_live_shares": 9,
        "hung_peers": ["ab" * 20],
    }
    assert check_text(health).splitlines()[1] == (
        "1 peer answered nothing (hung, asleep or cut off): abababababababab; "
        "its shares counted as missing"
    )
    health["hung_peers"] = [f"{i:02x}" * 20 for i in range(7)]
    last = check_text(health).splitlines()[1]
    assert last.startswith("7 peers answered nothing") and ", ...; their shares" in last


def test_a_backup_says_how_many_packs_it_placed_short() -> None:
    line = short_packs_text({"packs": 1, "fewest_shares": 3, "n": 4})
    assert line.startswith("1 pack placed short of its 4 shares (the fewest got 3): too few")
    assert short_packs_text({"packs": 5, "fewest_shares": 8, "n": 10}).startswith("5 packs")
