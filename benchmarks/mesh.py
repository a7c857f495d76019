"""The real thing: ten `p2pbackup serve` processes on loopback.

Peers 0 to 5, each an owner of its own, make a first backup of the dataset
in turn; peer 0 then backs it up unchanged and restores it three times, each
into a folder of its own. The odd peers count a share placed on its holder's
word, without the proof the others ask for, so the first backups alternate
with and without proofs and their medians say what the proofs cost.

Every cost the pipeline limit leaves out is in here: the control socket and the
CLI process, DHT lookups, share placement over TCP to nine other processes
sharing the same cores, the catalog, tree and index blobs, and on restore the
share fetches, verification, decoding and file writes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.dataset import Dataset
from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import LocalMesh, LocalPeer
from p2pbackup.shares.mesh_packs import UNPROVEN_FOR_BENCH

PEERS = 10
# Each of the first few peers makes its own first backup, and the fastest counts,
# as the pipeline limit is the best of its runs: on a shared machine noise only
# ever adds time, so the best run is the truest on both sides of the ratio.
FIRST_BACKUPS = 3
# As many again, alternating with those, by owners that count shares unproven.
UNPROVEN_OWNERS = frozenset({1, 3, 5})
# The restore is measured the same way: the fastest of three counts against the
# fastest first backup. Compared with one restore, a restore whose kernel took
# twice its usual time creating the same files (seen in one run in thirteen)
# decided the ratio rather than the code.
RESTORES = 3
MESH_READY_TIMEOUT = 60.0
# Each timed step waits until the machine is this idle over QUIET_WINDOW seconds:
# an owner's peer starts its next engine process when a job ends (about 0.3 CPU
# seconds of imports), and that must not land in the next step's time, nor in
# the codec limit measured just before a first backup.
QUIET_IDLE = 0.85
QUIET_WINDOW = 0.25
QUIET_TIMEOUT = 15.0


@dataclass
class Timed:
    """One CLI command: the wall time around it, what the peer reported, and the CPU
    seconds each peer process spent meanwhile (by peer number). On a small machine
    the nine holders compete with the owner for the same cores; this shows how much."""

    wall_seconds: float
    result: dict[str, Any]
    returncode: int
    cpu_seconds: list[float] = field(default_factory=list)
    owner: int = 0  # the peer the command ran on

    @property
    def peer_seconds(self) -> float:
        return float(self.result.get("seconds", 0.0))

    @property
    def engine_process(self) -> dict[str, Any]:
        """What the engine process the peer ran the job in reported: its CPU and peak
        memory."""
        process = self.result.get("engine_process")
        return process if isinstance(process, dict) else {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "wall_seconds": round(self.wall_seconds, 3),
            "peer_seconds": self.peer_seconds,
            "owner_peer": self.owner,
            "returncode": self.returncode,
            "peer_cpu_seconds": [round(c, 2) for c in self.cpu_seconds],
            "result": self.result,
        }


@dataclass
class MeshResult:
    """Everything measured on the mesh, for the report."""

    ready_seconds: float = 0.0
    firsts: list[Timed] = field(default_factory=list)  # one first backup per owner
    # The same by owners counting shares on their holders' word, without proofs.
    unproven: list[Timed] = field(default_factory=list)
    second: Timed | None = None
    restores: list[Timed] = field(default_factory=list)  # each into its own folder
    verified_files: int = 0
    verified_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    peak_rss_kib: list[int] = field(default_factory=list)
    engine_rss_kib: list[int] = field(default_factory=list)  # each job's engine process
    # Seconds to create the dataset's number of empty files, just before and after the
    # restore: how fast the kernel makes files right then, which a restore cannot beat.
    file_creation_seconds: list[float] = field(default_factory=list)
    store_bytes: list[int] = field(default_factory=list)

    @property
    def first(self) -> Timed | None:
        """The fastest of the first backups."""
        return min(self.firsts, key=lambda t: t.peer_seconds, default=None)

    @property
    def restore(self) -> Timed | None:
        """The fastest of the restores."""
        return min(self.restores, key=lambda t: t.peer_seconds, default=None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "peers": PEERS,
            "ready_seconds": round(self.ready_seconds, 3),
            "first_backup": self.first.as_dict() if self.first else None,
            "first_backups": [timed.as_dict() for timed in self.firsts],
            "first_backups_unproven": [timed.as_dict() for timed in self.unproven],
            "second_backup": self.second.as_dict() if self.second else None,
            "restore": self.restore.as_dict() if self.restore else None,
            "restores": [timed.as_dict() for timed in self.restores],
            "verify": {
                "files": self.verified_files,
                "bytes": self.verified_bytes,
                "problems": len(self.problems),
                "first_problems": self.problems[:20],
            },
            "peak_rss_kib": self.peak_rss_kib,
            "engine_process_peak_rss_kib": self.engine_rss_kib,
            "create_empty_files_seconds": [round(t, 3) for t in self.file_creation_seconds],
            "peer_home_bytes": self.store_bytes,
        }


class BenchMesh(LocalMesh):
    """The mesh, with the owners in `UNPROVEN_OWNERS` started without share proofs."""

    def start_peer(self, index: int, **options: Any) -> LocalPeer:
        if index not in UNPROVEN_OWNERS:
            return super().start_peer(index, **options)
        os.environ[UNPROVEN_FOR_BENCH] = "1"  # the child's environment is copied at start
        try:
            return super().start_peer(index, **options)
        finally:
            del os.environ[UNPROVEN_FOR_BENCH]


def _timed(mesh: LocalMesh, index: int, *args: str) -> Timed:
    """Run one CLI command with --json and time it from this process.

    `cli_json` raises on any non-zero exit, but a backup that skipped an unreadable
    file exits "partial" with a full result; that must be reported, not lost."""
    pids = [peer.process.pid if peer.process is not None else 0 for peer in mesh.peers]
    before = [cpu_seconds(pid) for pid in pids]
    started = time.perf_counter()
    done = mesh.cli(index, *args, "--json", timeout=1800)
    wall = time.perf_counter() - started
    used = [cpu_seconds(pid) - was for pid, was in zip(pids, before, strict=True)]
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError(
            f"p2pbackup {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}"
        ) from None
    if not isinstance(result, dict):
        raise RuntimeError(f"p2pbackup {' '.join(args)} printed {done.stdout[:200]!r}")
    return Timed(wall, result, done.returncode, used, index)


def wait_for_quiet(log: Any = print) -> bool:
    """Wait until the machine's CPUs were `QUIET_IDLE` idle over one window; False
    (and a logged line) if that did not happen within `QUIET_TIMEOUT`."""
    deadline = time.monotonic() + QUIET_TIMEOUT
    while time.monotonic() < deadline:
        before = _cpu_times()
        time.sleep(QUIET_WINDOW)
        after = _cpu_times()
        spent = [b - a for a, b in zip(before, after, strict=True)]
        if sum(spent) and (spent[3] + spent[4]) / sum(spent) >= QUIET_IDLE:
            return True
    log(f"the machine was not {QUIET_IDLE:.0%} idle within {QUIET_TIMEOUT:g}s; going on")
    return False


def _cpu_times() -> list[int]:
    """All CPUs' ticks from /proc/stat: user, nice, system, idle, iowait, irq, ..."""
    return [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all threads (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(pid: int) -> int:
    """VmHWM, the high-water mark of the process's resident set, in KiB (0 if gone).

    The peers live for the whole benchmark, so this is their peak over every phase."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def create_files(folder: Path, count: int) -> float:
    """Seconds to create `count` empty files in a new folder, left in place.

    On a shared machine this swings by more than ten times within minutes, and a
    restore creates every file: this says whether a slow restore was the kernel's.
    The files stay until the whole run is removed: on ext4 without a journal,
    creating a file skips over every inode freed in the last one to six minutes,
    so removing them here would slow the very restore this is a reference for."""
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for i in range(count):
        os.close(os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return time.perf_counter() - started


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def run_mesh(
    dataset: Dataset,
    workdir: Path,
    log: Any = print,
    before_first_backup: Callable[[int], None] = lambda owner: None,
) -> MeshResult:
    """Start the mesh, back up, restore, verify, read peak memory, stop it all.

    `log` gets a line before each step: a five-minute run should say what it is doing.
    `before_first_backup(owner)` runs just before each first backup, on an idle mesh."""
    out = MeshResult()
    sources = [str(root) for root in dataset.roots]
    targets = [workdir / f"restored-{i}" for i in range(1, RESTORES + 1)]
    with BenchMesh(workdir / "mesh", PEERS, serve_args=("--rpc-timeout", "3s")) as mesh:
        log(f"starting {PEERS} peers")
        started = time.perf_counter()
        mesh.start()
        ready = mesh.wait_until(
            lambda: all(
                mesh.control(i, "status")["routing_table_size"] == PEERS - 1 for i in range(PEERS)
            ),
            timeout=MESH_READY_TIMEOUT,
        )
        if not ready:
            raise RuntimeError(f"routing tables did not fill within {MESH_READY_TIMEOUT:g}s")
        out.ready_seconds = time.perf_counter() - started

        for owner in range(FIRST_BACKUPS + len(UNPROVEN_OWNERS)):
            wait_for_quiet(log)
            before_first_backup(owner)
            unproven = owner in UNPROVEN_OWNERS
            log(f"first backup by peer {owner}" + (", shares unproven" if unproven else ""))
            timed = _timed(mesh, owner, "backup", *sources)
            (out.unproven if unproven else out.firsts).append(timed)
        wait_for_quiet(log)
        log("second backup (unchanged)")
        out.second = _timed(mesh, 0, "backup", *sources)
        out.file_creation_seconds.append(create_files(workdir / "probe-before", dataset.files))
        for i, target in enumerate(targets, 1):
            wait_for_quiet(log)
            log(f"restore {i} of {RESTORES}")
            out.restores.append(_timed(mesh, 0, "restore", "latest", "--target", str(target)))
        out.file_creation_seconds.append(create_files(workdir / "probe-after", dataset.files))

        for i, peer in enumerate(mesh.peers):
            pid = peer.process.pid if peer.process is not None else None
            if pid is None or not peer.alive:
                raise RuntimeError(f"peer {i} died during the benchmark:\n{mesh.log_tail(i)}")
            out.peak_rss_kib.append(peak_rss_kib(pid))
        out.store_bytes = [_tree_bytes(peer.home) for peer in mesh.peers]
        out.engine_rss_kib = [
            int(timed.engine_process.get("peak_rss_kib", 0))
            for timed in [*out.firsts, *out.unproven, out.second, *out.restores]
        ]

    for i, target in enumerate(targets, 1):
        log(f"comparing restored tree {i} byte for byte")
        for root in dataset.roots:
            files, size, problems = compare_trees(root, target / root.name)
            if i == 1:
                out.verified_files += files
                out.verified_bytes += size
            out.problems += [f"restore {i}: {problem}" for problem in problems]
    return out
