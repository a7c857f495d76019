"""The real thing: ten `p2pbackup serve` processes on loopback, and how a command on
one of them is timed.

Peer 0 is the owner whose commands the comparison with other tools times.
Peer 1 counts a share placed on its holder's word, without the proof the
others ask for: its first backups, alternated with peer 0's, say what the
proofs cost.

Every cost the pipeline limit leaves out is in here: the control socket and the
CLI process, DHT lookups, share placement over TCP to nine other processes
sharing the same cores, the catalog, tree and index blobs, and on restore the
share fetches, verification, decoding and file writes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pbackup.cli.localmesh import LocalMesh, LocalPeer
from p2pbackup.shares.mesh_packs import UNPROVEN_FOR_BENCH

PEERS = 10
OWNER = 0  # the owner whose commands are compared with other tools
UNPROVEN_OWNERS = frozenset({1})  # counts shares on its holders' word
MESH_READY_TIMEOUT = 60.0
# Each timed step waits until the mesh's own processes (the peers and the engine
# processes they start) used under QUIET_CORES of a core over QUIET_WINDOW seconds:
# an owner's peer starts its next engine process when a job ends (about 0.3 CPU
# seconds of imports), and that must not land in the next step's time, whichever
# tool's step it is. Only our processes: on a machine other jobs keep busy, waiting
# for the whole machine to idle would eat the run and change nothing.
QUIET_CORES = 0.1
QUIET_WINDOW = 0.25
QUIET_TIMEOUT = 10.0


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


def settle(mesh: LocalMesh, log: Any = print) -> bool:
    """What comes before every timed command of every tool, as hyperfine's `--prepare
    sync`: every dirty page written out, then the mesh's processes quiet.

    Without the sync, the 200 MB a tool had just written (its repository, or a restore
    since removed) was still being written back when the next tool's command began,
    and that tool's fsyncs waited for it: the same backup took twice as long after
    another tool's writes as first in its round. The sync is not timed."""
    os.sync()
    return wait_for_quiet(mesh, log)


def wait_for_quiet(mesh: LocalMesh, log: Any = print) -> bool:
    """Wait until the mesh's processes were quiet over one window; False (and a logged
    line) if that did not happen within `QUIET_TIMEOUT`."""
    peers = {peer.process.pid for peer in mesh.peers if peer.process is not None}
    deadline = time.monotonic() + QUIET_TIMEOUT
    while time.monotonic() < deadline:
        before = _family_cpu(peers)
        time.sleep(QUIET_WINDOW)
        after = _family_cpu(peers)
        spent = sum(after.get(pid, 0.0) - was for pid, was in before.items())
        if spent <= QUIET_CORES * QUIET_WINDOW:
            return True
    log(f"the mesh's processes were not idle within {QUIET_TIMEOUT:g}s; going on")
    return False


def _family_cpu(parents: set[int]) -> dict[int, float]:
    """CPU seconds so far of `parents` and of their children (the engine processes)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        pid = int(entry.name)
        if pid in parents or int(fields[1]) in parents:
            found[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


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


def start_mesh(folder: Path, log: Any = print) -> tuple[BenchMesh, float]:
    """A new ten-peer mesh in `folder` with full routing tables, and the seconds that
    took; its caller closes it."""
    mesh = BenchMesh(folder, PEERS, serve_args=("--rpc-timeout", "3s"))
    log(f"starting {PEERS} peers")
    started = time.perf_counter()
    try:
        mesh.start()
        ready = mesh.wait_until(
            lambda: all(
                mesh.control(i, "status")["routing_table_size"] == PEERS - 1 for i in range(PEERS)
            ),
            timeout=MESH_READY_TIMEOUT,
        )
        if not ready:
            raise RuntimeError(f"routing tables did not fill within {MESH_READY_TIMEOUT:g}s")
    except BaseException:
        mesh.close()
        raise
    return mesh, time.perf_counter() - started


def peer_peaks(mesh: LocalMesh) -> list[int]:
    """Each peer's peak resident set (KiB), peer 0 first; raises if one died."""
    peaks = []
    for i, peer in enumerate(mesh.peers):
        pid = peer.process.pid if peer.process is not None else None
        if pid is None or not peer.alive:
            raise RuntimeError(f"peer {i} died during the benchmark:\n{mesh.log_tail(i)}")
        peaks.append(peak_rss_kib(pid))
    return peaks
