"""Backup and restore across twelve real peer processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.backup.engine import RACY_SECONDS
from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import CLI, SAFETY_DEADLINE, LocalMesh
from tests.peer.restarts import recover_and_restore
from tests.peer.trees import BIG_BYTES, change_some, make_tree, wait_until_settled

pytestmark = pytest.mark.timeout(600)
PEERS = 12


@pytest.fixture(scope="module")
def mesh12(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    root = tmp_path_factory.mktemp("mesh12")
    with LocalMesh(root, PEERS, serve_args=("--rpc-timeout", "3s")) as mesh:
        mesh.start()
        mesh.wait_for_tables()
        yield mesh


@pytest.fixture
def background() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Commands a test runs beside the mesh; whatever still runs at its end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source") / "tree"
    root.mkdir()
    assert make_tree(root) > 1000
    wait_until_settled(root, RACY_SECONDS)  # else its first backup would not remember it
    return root


def _identical(original: Path, copy: Path) -> None:
    files, _, problems = compare_trees(original, copy)
    assert files > 0
    assert problems == []
    for empty in ("empty/nested/deeper", "empty-top"):
        assert (copy / empty).is_dir()


def test_backup_incremental_kill_three_restore_and_recover(
    mesh12: LocalMesh, tree: Path, tmp_path: Path
) -> None:
    owner = 0
    first = _first_backup_is_whole_and_healthy(mesh12, owner, tree)
    third = _later_backups_read_and_send_only_changes(mesh12, owner, tree, first)

    listed = mesh12.cli_json(owner, "snapshots")["snapshots"]
    assert len(listed) == 3 and listed[0]["tags"] == ["first"]
    assert {"id", "time", "host", "paths", "tags"} <= set(listed[0])
    entries = mesh12.cli_json(owner, "ls", "latest", "tree/big")["entries"]
    assert [e["path"] for e in entries] == ["tree/big", "tree/big/video.bin"]

    # Three peers die; k=3 of n=10 shares per pack still rebuild everything.
    for index in (9, 10, 11):
        mesh12.stop_peer(index, signal.SIGKILL)
    restored = mesh12.cli_json(owner, "restore", "latest", "--target", str(tmp_path / "out"))
    assert restored["files_failed"] == 0 and restored["files_restored"] == third["files"]
    _identical(tree, tmp_path / "out" / "tree")

    # A subset restore takes only what matches.
    subset = mesh12.cli_json(
        owner, "restore", "latest", "--target", str(tmp_path / "sub"), "--include", "tree/big/*"
    )
    assert subset["files_restored"] == 1
    assert (tmp_path / "sub" / "tree" / "big" / "video.bin").stat().st_size == BIG_BYTES

    ids = [s["id"] for s in listed]
    fresh = recover_and_restore(mesh12, owner, tree, ids, tmp_path / "recovered")
    _forget_from_the_new_home(mesh12, owner, fresh, ids)


def _first_backup_is_whole_and_healthy(mesh: LocalMesh, owner: int, tree: Path) -> dict[str, Any]:
    first = mesh.cli_json(owner, "backup", str(tree), "--tag", "first")
    assert first["files"] > 1000 and first["errors"] == []
    assert "short_packs" not in first  # 11 holders for n = 10: every pack whole
    assert first["chunks_new"] > 1000 and first["bytes_sent"] > first["bytes"] // 2
    health = mesh.cli_json(owner, "check", "--read-data")
    assert health["packs"] > 0 and health["healthy"] == health["packs"]
    assert health["min_live_shares"] == 10 and health["unrecoverable"] == 0
    assert health["chunks_read"] >= first["chunks_new"] and health["chunk_errors"] == []
    return first


def _later_backups_read_and_send_only_changes(
    mesh: LocalMesh, owner: int, tree: Path, first: dict[str, Any]
) -> dict[str, Any]:
    # Unchanged: nothing is read, nothing is sent.
    second = mesh.cli_json(owner, "backup", str(tree))
    assert second["files_unchanged"] == second["files"] == first["files"]
    assert second["bytes_read"] == 0
    assert second["chunks_new"] == 0 and second["bytes_sent"] == 0

    # 1% changed: only their chunks and the trees above them are new.
    changed = change_some(tree, 0.01)
    third = mesh.cli_json(owner, "backup", str(tree))
    assert third["files_unchanged"] == third["files"] - len(changed)
    assert third["bytes_read"] == sum(p.stat().st_size for p in changed)
    touched_dirs = {parent for p in changed for parent in p.relative_to(tree).parents}
    assert len(changed) <= third["chunks_new"] <= len(changed) + len(touched_dirs) + 2
    assert third["bytes_sent"] < first["bytes_sent"] // 20
    return third


def _forget_from_the_new_home(mesh: LocalMesh, owner: int, fresh: int, ids: list[str]) -> None:
    """Forget from the new device; the old one sees the same list (tombstones in the set)."""
    refused = mesh.cli(fresh, "forget")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    typo = mesh.cli(fresh, "forget", "--keep-tag", "frist")  # keeps none: refused
    assert typo.returncode == 1 and "these rules keep none of the 3 snapshots" in typo.stderr
    dry = mesh.cli_json(fresh, "forget", "--keep-last", "2", "--dry-run")
    assert [s["id"] for s in dry["forget"]] == [ids[0]]
    assert len(mesh.cli_json(owner, "snapshots")["snapshots"]) == 3
    done = mesh.cli_json(fresh, "forget", "--keep-last", "1", "--keep-tag", "first")
    assert [s["id"] for s in done["forget"]] == [ids[1]]
    left = [s["id"] for s in mesh.cli_json(owner, "snapshots")["snapshots"]]
    assert left == [ids[0], ids[2]]


def test_corrupted_shares_on_disk_are_detected_and_rebuilt_from_others(
    mesh12: LocalMesh, tree: Path, tmp_path: Path
) -> None:
    owner = 2
    mesh12.cli_json(owner, "backup", str(tree))
    victims = [p for p in mesh12.peers[3:6] if p.alive]
    held_before = {p.index: mesh12.status(p.index)["shares_held"] for p in victims}
    corrupted = 0
    for peer in victims:
        for share in (peer.home / "shares" / "shares").rglob("*"):
            if share.is_file() and not share.name.startswith("."):
                data = bytearray(share.read_bytes())
                data[len(data) // 2] ^= 0xFF
                share.write_bytes(bytes(data))
                corrupted += 1
    assert corrupted > 0
    restored = mesh12.cli_json(owner, "restore", "latest", "--target", str(tmp_path / "out"))
    assert restored["files_failed"] == 0
    _identical(tree, tmp_path / "out" / "tree")
    # The holders served them as they lie (the owner checks every share it gets,
    # decision 0057); the owner's audits find the rot and the holders drop them.
    held_after = {p.index: mesh12.status(p.index)["shares_held"] for p in victims}
    assert held_after == held_before
    mesh12.cli_json(owner, "check")
    held_audited = {p.index: mesh12.status(p.index)["shares_held"] for p in victims}
    assert sum(held_audited.values()) < sum(held_before.values())


def test_a_backup_killed_halfway_completes_when_run_again(
    mesh12: LocalMesh, tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    owner = 1
    source = _random_files(tmp_path / "data", [f"part{i:02d}.bin" for i in range(12)], 4 * 2**20)
    catalog = mesh12.peers[owner].home / "catalog.sqlite3"
    packs_before, bytes_before = _committed(catalog)
    backup = subprocess.Popen(
        [*CLI, "--home", str(mesh12.peers[owner].home), "backup", str(source), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    background.append(backup)
    # Kill the owner's peer once its catalog holds two packs more, well before the end.
    mesh12.wait_for(
        "two packs of the backup committed",
        lambda: _committed(catalog)[0] >= packs_before + 2,
    )
    mesh12.stop_peer(owner, signal.SIGKILL)
    # The command ends when its peer's control connection does.
    backup.wait(timeout=SAFETY_DEADLINE)
    assert backup.returncode != 0
    packs_after, bytes_after = _committed(catalog)
    assert packs_after >= packs_before + 2
    pack_bytes = bytes_after - bytes_before
    mesh12.start_peer(owner, bootstrap=mesh12.peers[2].listen)
    mesh12.wait_for_tables(at_least=7, indices=[owner])
    again = mesh12.cli_json(owner, "backup", str(source))
    assert again["files"] == 12
    # What the killed run committed is not sent again: at least half of those bytes saved.
    full = 48 * 2**20 * 10 // 3
    assert again["bytes_sent"] < full - pack_bytes * 10 // 3 // 2
    out = tmp_path / "out"
    restored = mesh12.cli_json(owner, "restore", "latest", "--target", str(out))
    assert restored["files_failed"] == 0
    files, _, problems = compare_trees(source, out / "data")
    assert files == 12 and problems == []


def test_a_restore_stopped_by_ctrl_c_leaves_no_file_that_passes_for_restored(
    mesh12: LocalMesh, tmp_path: Path, background: list[subprocess.Popen[bytes]]
) -> None:
    owner = 3
    # Each over three packs: made at full size before its data comes.
    source = _random_files(tmp_path / "data", [f"video{i}.bin" for i in range(6)], 16 * 2**20)
    mesh12.cli_json(owner, "backup", str(source))
    out = tmp_path / "out"
    restore = subprocess.Popen(
        [*CLI, "--home", str(mesh12.peers[owner].home), "restore", "latest", "--target", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    background.append(restore)
    mesh12.wait_for("the restore's first file", lambda: any((out / "data").glob("*")), step=0.01)
    restore.send_signal(signal.SIGINT)
    assert restore.wait(timeout=SAFETY_DEADLINE) == 130

    def whole(path: Path) -> bool:
        return path.read_bytes() == (source / path.name).read_bytes()

    # The peer stops its engine, which removes what it had begun: what stays is whole.
    mesh12.wait_for(
        "only whole files left",
        lambda: all(whole(p) for p in (out / "data").glob("*")),
        deadline=20,
    )
    assert len(list((out / "data").glob("*"))) < 6  # it was stopped before the end


def _committed(catalog: Path) -> tuple[int, int]:
    """Packs the owner's catalog records as placed, and their bytes, read beside the
    running backup (SQLite in WAL mode lets a reader in while the writer works)."""
    if not catalog.exists():
        return 0, 0
    with contextlib.closing(sqlite3.connect(catalog, timeout=10)) as db:
        count, size = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM packs").fetchone()
    return int(count), int(size)


def _random_files(folder: Path, names: list[str], size: int) -> Path:
    """`folder`, made, holding a file of `size` random bytes under each name."""
    folder.mkdir()
    for name in names:  # a seed from the name: the same bytes every run
        (folder / name).write_bytes(_random(size, seed=zlib.crc32(name.encode())))
    return folder


def _random(size: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(size)
