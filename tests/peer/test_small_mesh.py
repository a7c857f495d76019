"""A mesh of four real peers: too small for the defaults, fine after one documented command.

The defaults (3-of-10, happy 7) need seven peers besides the owner's. Four peers
fail with one line that says how many peers there are, how many are needed and
what to change; `config set redundancy 2-of-4` then makes backups work, with no
restart and no new phrase. Adding peers and asking for more redundancy, `repair
--reencode` moves the old packs to it, and a recovery from the phrase restores
packs of both encodings.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def mesh4(tmp_path: Path) -> Iterator[LocalMesh]:
    with LocalMesh(tmp_path / "mesh", 4, serve_args=("--rpc-timeout", "3s")) as mesh:
        mesh.start()
        mesh.wait_for_tables()
        yield mesh


def _tree(root: Path, files: int, seed: int) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(files):
        (root / f"file-{i:03d}.bin").write_bytes(rng.randbytes(rng.randrange(1, 60_000)))
    return root


def _identical(original: Path, copy: Path) -> None:
    files, _, problems = compare_trees(original, copy)
    assert files > 0 and problems == []


def test_four_peers_back_up_after_one_documented_command(mesh4: LocalMesh, tmp_path: Path) -> None:
    tree = _tree(tmp_path / "tree", 40, seed=1)
    failed = mesh4.cli(0, "backup", str(tree))
    assert failed.returncode == 1
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert "only 3 peers can hold shares (7 needed for 3-of-10, happy 7" in failed.stderr
    assert "`p2pbackup config set redundancy 2-of-3`" in failed.stderr

    shown = mesh4.cli_json(0, "config", "set", "redundancy", "2-of-4")
    assert shown["redundancy"] == "2-of-4" and shown["happy"] == 3
    assert mesh4.cli_json(0, "config", "show") == shown

    saved = mesh4.cli_json(0, "backup", str(tree))  # the same peer: no restart
    assert saved["redundancy"] == "2-of-4" and saved["files"] == 40
    # Three holders for n = 4: the backup says its packs are short, not only `check`.
    assert saved["short_packs"]["fewest_shares"] == 3 and saved["short_packs"]["n"] == 4
    assert saved["short_packs"]["packs"] >= 2  # its data and its index at least
    restored = mesh4.cli_json(0, "restore", "latest", "--target", str(tmp_path / "out"))
    assert restored["files_failed"] == 0
    _identical(tree, tmp_path / "out" / "tree")

    # Three holders for n = 4: a repair cannot bring a pack to n, and says so.
    repaired = mesh4.cli(0, "repair")
    assert repaired.returncode == 3, repaired.stderr
    assert repaired.stderr.count("\n") == 1 and "Traceback" not in repaired.stderr
    assert "still below n shares: too few peers took the rebuilt ones" in repaired.stderr


def test_reencode_moves_old_packs_and_a_recovery_reads_both_encodings(
    mesh4: LocalMesh, tmp_path: Path
) -> None:
    mesh4.cli_json(0, "config", "set", "redundancy", "2-of-4")
    first = _tree(tmp_path / "first", 30, seed=2)
    mesh4.cli_json(0, "backup", str(first))
    before = mesh4.cli_json(0, "check")
    assert before["min_live_shares"] == 3  # n=4, and three peers to hold them

    for _ in range(2):
        added = mesh4.add_peer()
        mesh4.init_all()
        mesh4.start_peer(added.index)
    mesh4.wait_for_tables()
    assert mesh4.cli_json(0, "config", "set", "redundancy", "3-of-7")["happy"] == 5
    repaired = mesh4.cli_json(0, "repair", "--reencode")
    assert repaired["packs_reencoded"] == repaired["packs"] > 0
    assert repaired["reencode_errors"] == []
    after = mesh4.cli_json(0, "check")
    assert after["unrecoverable"] == 0 and after["min_live_shares"] == 5  # n=7 on 5 peers

    # New packs of another encoding beside them: one run's override.
    second = _tree(tmp_path / "second", 10, seed=3)
    override = mesh4.cli_json(0, "backup", str(second), "--redundancy", "2-of-4")
    assert override["redundancy"] == "2-of-4"
    assert mesh4.cli_json(0, "config", "show")["redundancy"] == "3-of-7"

    phrase = mesh4.peers[0].recovery_phrase
    assert phrase is not None
    fresh = mesh4.add_peer()
    mesh4.cli(fresh.index, "init", "--recover", check=True, stdin=phrase)
    mesh4.start_peer(fresh.index)
    mesh4.wait_for_tables(at_least=5, indices=[fresh.index])
    for snapshot, tree in (("latest", second), (_first_id(mesh4, fresh.index), first)):
        target = tmp_path / f"recovered-{tree.name}"
        restored = mesh4.cli_json(fresh.index, "restore", snapshot, "--target", str(target))
        assert restored["files_failed"] == 0
        _identical(tree, target / tree.name)


def _first_id(mesh: LocalMesh, index: int) -> str:
    listed = mesh.cli(index, "snapshots", "--json", check=True)
    return str(json.loads(listed.stdout)["snapshots"][0]["id"])
