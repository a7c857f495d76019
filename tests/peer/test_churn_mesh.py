"""Restore and backup over real TCP while holders die or hang mid-transfer.

A hung holder (SIGSTOP) keeps its connections open and answers nothing: before,
a fetch or placement that asked it waited out the 60 s share timeout. A dead
one (SIGKILL) resets its connections. Either way the operation must switch to
other holders and finish, byte-identical, well before one such timeout.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import CLI, LocalMesh

pytestmark = pytest.mark.timeout(300)
PEERS = 12
OWNER = 0
HUNG = (3, 5, 7, 9)  # SIGSTOPped during the restore
DEAD = (11,)  # SIGKILLed during the restore
# Less than the owner's 60 s share timeout: an operation that ends within it after the
# holders went cannot have waited a request's timeout out. Not a speed check: undisturbed,
# these take a few seconds.
PATIENCE = 45.0


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    root = tmp_path_factory.mktemp("churn")
    with LocalMesh(root, PEERS, serve_args=("--rpc-timeout", "3s")) as local:
        try:
            local.start()
            local.wait_for_tables()
            yield local
        finally:
            for peer in local.peers:  # a stopped peer ignores SIGTERM until it runs again
                if peer.alive and peer.process is not None:
                    os.kill(peer.process.pid, signal.SIGCONT)


def _folder(root: Path, files: int, size: int, seed: int) -> Path:
    rng = random.Random(seed)
    root.mkdir()
    for i in range(files):
        (root / f"part{i:03d}.bin").write_bytes(rng.randbytes(size))
    return root


def _start(mesh: LocalMesh, owner: int, *args: str) -> subprocess.Popen[bytes]:
    home = str(mesh.peers[owner].home)
    return subprocess.Popen(
        [*CLI, "--home", home, *args, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _finish(process: subprocess.Popen[bytes], mesh: LocalMesh, owner: int) -> dict[str, object]:
    try:
        out, err = process.communicate(timeout=PATIENCE)
    except subprocess.TimeoutExpired:
        process.kill()  # what it said so far, and its peer's log, say where it waited
        _, err = process.communicate()
        said = err.decode(errors="replace")[-4000:]
        pytest.fail(
            f"still waiting {PATIENCE:g}s after the holders went: a timeout waited out\n"
            f"command said:\n{said}\nits peer's log:\n{mesh.log_tail(owner, 60)}"
        )
    assert process.returncode == 0, err.decode(errors="replace")
    result: dict[str, object] = json.loads(out)
    return result


def _written(target: Path) -> int:
    return sum(p.stat().st_size for p in target.rglob("*.bin") if p.is_file())


def _signal(mesh: LocalMesh, indices: tuple[int, ...], sig: int) -> None:
    for index in indices:
        process = mesh.peers[index].process
        assert process is not None
        os.kill(process.pid, sig)


def test_a_check_while_a_holder_hangs_names_it_and_counts_its_shares_missing(
    mesh: LocalMesh, tmp_path: Path
) -> None:
    """A check waited out the RPC timeout for a hung holder in every pack's lookup: a few
    hundred packs took minutes. Now the hung holder costs the check one stall.

    First in the module: its calm check needs packs that are whole. Run after the
    others (a holder killed, five stopped and resumed), its calm check once found all
    24 packs degraded already, so none could become so."""
    owner, hung = 2, 6
    for i in range(8):  # each backup adds its own packs (data and index)
        folder = _folder(tmp_path / f"small{i}", 2, 40_000, seed=10 + i)
        mesh.cli_json(owner, "backup", str(folder))
    calm = mesh.cli_json(owner, "check")
    assert calm["packs"] >= 16 and calm["hung_peers"] == []
    hung_id = mesh.status(hung)["node_id"]
    _signal(mesh, (hung,), signal.SIGSTOP)
    try:
        check = _start(mesh, owner, "check")
        result = _finish(check, mesh, owner)
    finally:
        _signal(mesh, (hung,), signal.SIGCONT)
        if check.poll() is None:
            check.kill()
    assert result["hung_peers"] == [hung_id]
    assert result["unrecoverable"] == 0
    assert result["degraded"] > calm["degraded"]  # its shares counted missing...
    assert result["min_live_shares"] == calm["min_live_shares"] - 1  # ...and only its


def test_a_restore_losing_five_holders_midway_finishes_identical(
    mesh: LocalMesh, tmp_path: Path
) -> None:
    source = _folder(tmp_path / "data", 96, 512 * 1024, seed=1)
    mesh.cli_json(OWNER, "backup", str(source))
    target = tmp_path / "out"
    restore = _start(mesh, OWNER, "restore", "latest", "--target", str(target))
    try:
        mesh.wait_for("the restore writing", lambda: _written(target) > 0, step=0.01)
        _signal(mesh, HUNG, signal.SIGSTOP)
        for index in DEAD:
            mesh.stop_peer(index, signal.SIGKILL)
        assert restore.poll() is None, "the restore ended before the holders went"
        result = _finish(restore, mesh, OWNER)
    finally:
        _signal(mesh, HUNG, signal.SIGCONT)
        if restore.poll() is None:
            restore.kill()
    assert result["files_failed"] == 0 and result["files_restored"] == 96
    files, _, problems = compare_trees(source, target / "data")
    assert files == 96 and problems == []


def test_a_backup_losing_a_holder_midway_finishes(mesh: LocalMesh, tmp_path: Path) -> None:
    """Another owner, whose peer saw nothing of the restore's losses."""
    owner = 1
    source = _folder(tmp_path / "more", 48, 512 * 1024, seed=2)
    hung = 4
    held = mesh.status(hung)["shares_held"]
    backup = _start(mesh, owner, "backup", str(source))
    try:
        mesh.wait_for(
            "a share of the backup on the peer that hangs",
            lambda: mesh.status(hung)["shares_held"] > held,
            step=0.01,
        )
        _signal(mesh, (hung,), signal.SIGSTOP)
        assert backup.poll() is None, "the backup ended before the holder hung"
        result = _finish(backup, mesh, owner)
    finally:
        _signal(mesh, (hung,), signal.SIGCONT)
        if backup.poll() is None:
            backup.kill()
    assert result["files"] == 48 and result["errors"] == []
    target = tmp_path / "out"
    restored = mesh.cli_json(owner, "restore", "latest", "--target", str(target))
    assert restored["files_failed"] == 0
    files, _, problems = compare_trees(source, target / "more")
    assert files == 48 and problems == []
