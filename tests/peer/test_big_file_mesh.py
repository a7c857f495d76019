"""A 300 MB file through ten real peers and back, with every process's memory bounded.

A backup or restore that held the file whole, or packs without limit, would show
here: the engine processes and the holders stay under a bound below the file's
size (they idle at about 80 MB), and what the restore adds to any peer (the
owner's keeps the heap its backup grew) stays well under the file's size too.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pbackup.cli.localmesh import LocalMesh

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

PEERS = 10
MIB = 1024 * 1024
FILE_BYTES = 300 * MIB
PIECE = 8 * MIB
BOUND_KIB = 250 * 1024  # per engine and holder: less than the file, so holding it fails
# The owner's peer, which keeps the heap its backup grew: under the file's size plus
# an idle peer's, so a file-sized buffer breaks it.
PEER_BOUND_KIB = 360 * 1024
GROWTH_KIB = 100 * 1024  # what the restore may add to a peer: a third of the file


def _write_random(path: Path, size: int, seed: int) -> bytes:
    """Write `size` random bytes, a piece at a time; their BLAKE2b digest."""
    rng, digest = random.Random(seed), hashlib.blake2b()
    with path.open("wb") as out:
        for start in range(0, size, PIECE):
            piece = rng.randbytes(min(PIECE, size - start))
            digest.update(piece)
            out.write(piece)
    return digest.digest()


def _digest(path: Path) -> bytes:
    digest = hashlib.blake2b()
    with path.open("rb") as source:
        while piece := source.read(PIECE):
            digest.update(piece)
    return digest.digest()


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for process {pid}")


def _reset_peak(pid: int) -> int:
    """Start the process's VmHWM again from its resident set now (Linux 4.0 and later);
    that resident set."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _memory_kib(pid, "VmRSS")


def _peaks(mesh: LocalMesh) -> dict[int, int]:
    return {
        peer.index: _memory_kib(peer.process.pid, "VmHWM")
        for peer in mesh.peers
        if peer.process is not None
    }


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[LocalMesh]:
    with LocalMesh(tmp_path / "mesh", PEERS, serve_args=("--rpc-timeout", "3s")) as mesh:
        mesh.start()
        mesh.wait_for_tables()
        yield mesh


def _engine_peak(result: dict[str, Any]) -> int:
    process = result.get("engine_process")
    assert isinstance(process, dict), result
    return int(process["peak_rss_kib"])


def test_a_300_mb_file_restores_identical_with_bounded_memory(
    mesh: LocalMesh, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    written = _write_random(source / "big.bin", FILE_BYTES, seed=19)

    saved = mesh.cli_json(0, "backup", str(source))
    assert saved["files"] == 1 and saved["bytes"] == FILE_BYTES, saved
    backup_engine = _engine_peak(saved)
    backup_peers = _peaks(mesh)

    # The restore on its own: each peer's peak starts again from what it holds now.
    before: dict[int, int] = {}
    for peer in mesh.peers:
        assert peer.process is not None
        before[peer.index] = _reset_peak(peer.process.pid)
    target = tmp_path / "restored"
    restored = mesh.cli_json(0, "restore", "latest", "--target", str(target))
    restore_engine = _engine_peak(restored)
    restore_peers = _peaks(mesh)

    assert restored["files_failed"] == 0 and restored["files_restored"] == 1, restored
    copy = target / "source" / "big.bin"
    assert copy.stat().st_size == FILE_BYTES
    assert _digest(copy) == written

    figures = (
        f"engines: backup {backup_engine} KiB, restore {restore_engine} KiB; peers during "
        f"the backup {backup_peers}, before the restore {before}, during it {restore_peers}"
    )
    print(figures)  # shown with -s: the figures behind the bounds
    assert backup_engine <= BOUND_KIB and restore_engine <= BOUND_KIB, figures
    holders = [index for index in backup_peers if index != 0]
    assert all(backup_peers[i] <= BOUND_KIB for i in holders), figures
    assert all(restore_peers[i] <= BOUND_KIB for i in holders), figures
    assert backup_peers[0] <= PEER_BOUND_KIB and restore_peers[0] <= PEER_BOUND_KIB, figures
    assert all(restore_peers[i] - before[i] <= GROWTH_KIB for i in before), figures
