"""Row "restore under churn": the dataset restored from twelve peers, undisturbed and
while five of its holders are SIGKILLed or SIGSTOPped at seeded random moments.

A SIGSTOPped holder is hung, not dead: its connections stay open and nothing
answers, the case that cost a fetch its whole share timeout. Each round
restores undisturbed, then again with five holders lost during the restore,
verifies both byte for byte, and brings the lost peers back (the owner's peer
too, so it starts the next round knowing nothing of them). Peers keep the
default timeouts. A benchmark, not a test: nothing here is enforced.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from benchmarks.dataset import Dataset
from benchmarks.mesh import _timed
from p2pbackup.cli.demo import compare_trees
from p2pbackup.cli.localmesh import CLI, LocalMesh

PEERS = 12
LOST = 5
ROUNDS = 2
OWNER = 0
MB = 1_000_000


@dataclass
class Loss:
    peer: int
    how: str  # "SIGKILL" or "SIGSTOP"
    at_seconds: float  # after the restore wrote its first byte


@dataclass
class ChurnRound:
    calm_seconds: float
    churn_seconds: float
    losses: list[Loss]
    identical: bool

    @property
    def ratio(self) -> float:
        return self.churn_seconds / self.calm_seconds if self.calm_seconds else 0.0


@dataclass
class ChurnResult:
    dataset: Dataset
    rounds: list[ChurnRound] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # restored bytes that differ
    # Why the rounds ended early (the mesh did not come back whole): no difference in
    # what was restored, and said apart from one.
    stopped: str | None = None

    def _median(self, pick: Callable[[ChurnRound], float]) -> float:
        return statistics.median(pick(r) for r in self.rounds) if self.rounds else 0.0

    @property
    def calm(self) -> float:
        return self._median(lambda r: r.calm_seconds)

    @property
    def churn(self) -> float:
        return self._median(lambda r: r.churn_seconds)

    @property
    def ratio(self) -> float:
        return self._median(lambda r: r.ratio)

    def row(self) -> tuple[str, str, str, str]:
        """measure, seconds, detail, verdict: for the table and the log."""
        spread = ", ".join(f"{r.calm_seconds:.1f}/{r.churn_seconds:.1f}" for r in self.rounds)
        identical = all(r.identical for r in self.rounds) and not self.problems
        verdict = "identical" if identical else f"{len(self.problems)} differences"
        if self.stopped is not None:
            verdict += f"; stopped {self.stopped}"
        return (
            f"restore under churn ({PEERS} peers, {LOST} holders lost, median of "
            f"{len(self.rounds)})",
            f"{self.calm:.2f} / {self.churn:.2f}",
            f"undisturbed / churned s per round: {spread}; ratio {self.ratio:.2f}x",
            verdict,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "peers": PEERS,
            "lost": LOST,
            "dataset": self.dataset.as_dict(),
            "median_undisturbed_seconds": round(self.calm, 3),
            "median_churn_seconds": round(self.churn, 3),
            "median_ratio": round(self.ratio, 3),
            "rounds": [
                {
                    "undisturbed_seconds": round(r.calm_seconds, 3),
                    "churn_seconds": round(r.churn_seconds, 3),
                    "ratio": round(r.ratio, 3),
                    "identical": r.identical,
                    "losses": [vars(loss) for loss in r.losses],
                }
                for r in self.rounds
            ],
            "problems": self.problems[:20],
            "stopped": self.stopped,
        }


def run_churn(dataset: Dataset, workdir: Path, log: Any = print, seed: int = 16) -> ChurnResult:
    """Start twelve peers, back the dataset up once, then run `ROUNDS` rounds."""
    out = ChurnResult(dataset)
    rng = random.Random(seed)
    sources = [str(root) for root in dataset.roots]
    with LocalMesh(workdir / "churn-mesh", PEERS) as mesh:
        log(f"churn: starting {PEERS} peers")
        mesh.start()
        mesh.wait_for_tables()
        log("churn: backing the dataset up")
        done = mesh.cli(OWNER, "backup", *sources, "--json", timeout=1800)
        if done.returncode not in (0, 3):
            raise RuntimeError(f"churn backup failed: {done.stderr.strip()}")
        for number in range(1, ROUNDS + 1):
            log(f"churn round {number}: undisturbed restore")
            calm_target = workdir / f"churn-calm-{number}"
            calm = _timed(mesh, OWNER, "restore", "latest", "--target", str(calm_target))
            log(f"churn round {number}: restore losing {LOST} holders")
            target = workdir / f"churn-lost-{number}"
            seconds, losses = _churned_restore(mesh, target, calm.peer_seconds, rng)
            identical = _verify(dataset, calm_target, out.problems, "undisturbed")
            identical = _verify(dataset, target, out.problems, "churned") and identical
            out.rounds.append(ChurnRound(calm.peer_seconds, seconds, losses, identical))
            log(f"churn round {number}: {calm.peer_seconds:.1f}s undisturbed, {seconds:.1f}s")
            if number == ROUNDS:
                break  # no round after it needs the mesh whole again
            try:
                _bring_back(mesh, losses)
            except TimeoutError as exc:  # reported in the row; the other rows still stand
                gaps = who_lacks_whom(mesh)
                out.stopped = f"after round {number}: {str(exc).splitlines()[0]} ({gaps})"
                break
    return out


def _churned_restore(
    mesh: LocalMesh, target: Path, calm_seconds: float, rng: random.Random
) -> tuple[float, list[Loss]]:
    """Restore while `LOST` holders go at random moments within 60% of an undisturbed
    restore's time from its first written byte: SIGKILL (gone) or SIGSTOP (hung),
    both kinds. From the first byte: losing five of twelve peers before the snapshot
    list is read is the snapshot index's test (its replicas), not the data's."""
    victims = rng.sample(range(1, PEERS), LOST)
    kinds = ["SIGKILL", "SIGKILL", "SIGSTOP", "SIGSTOP", "SIGSTOP"][:LOST]
    rng.shuffle(kinds)
    moments = sorted(rng.uniform(0.0, 0.6) * calm_seconds for _ in range(LOST))
    losses = [Loss(p, k, round(t, 3)) for p, k, t in zip(victims, kinds, moments, strict=True)]
    home = str(mesh.peers[OWNER].home)
    restore = subprocess.Popen(
        [*CLI, "--home", home, "restore", "latest", "--target", str(target), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        while _written(target) == 0 and restore.poll() is None:
            time.sleep(0.005)
        began = time.monotonic()
        for loss in losses:
            time.sleep(max(0.0, began + loss.at_seconds - time.monotonic()))
            process = mesh.peers[loss.peer].process
            assert process is not None
            os.kill(process.pid, getattr(signal, loss.how))
        out, err = restore.communicate(timeout=1800)
    finally:
        for loss in losses:
            process = mesh.peers[loss.peer].process
            if loss.how == "SIGSTOP" and process is not None:
                os.kill(process.pid, signal.SIGCONT)
        if restore.poll() is None:
            restore.kill()
    if restore.returncode != 0:
        raise RuntimeError(f"churned restore failed: {err.decode(errors='replace').strip()}")
    return float(json.loads(out)["seconds"]), losses


def _written(target: Path) -> int:
    """Bytes of regular files under `target` so far (0 before it exists)."""
    total = 0
    for folder, _, names in os.walk(target):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _verify(dataset: Dataset, target: Path, problems: list[str], label: str) -> bool:
    found: list[str] = []
    for root in dataset.roots:
        _, _, differences = compare_trees(root, target / root.name)
        found += [f"{label}: {d}" for d in differences]
    problems += found
    return not found


def _bring_back(mesh: LocalMesh, losses: list[Loss]) -> None:
    """Restart the killed peers and the owner's, so the next round starts whole and its
    owner knows nothing of this round's losses."""
    for loss in losses:
        if loss.how == "SIGKILL":
            mesh.stop_peer(loss.peer, signal.SIGKILL)
    mesh.stop_peer(OWNER)
    for peer in [OWNER, *(loss.peer for loss in losses if loss.how == "SIGKILL")]:
        listen = mesh.peers[peer].listen
        assert listen is not None
        bootstrap = mesh.peers[1 if peer != 1 else 2].listen
        # At its old address: the others' routing tables still name it there.
        mesh.start_peer(peer, bootstrap=bootstrap, port=int(listen.rpartition(":")[2]))
    mesh.wait_for_tables()


def who_lacks_whom(mesh: LocalMesh) -> str:
    """Whose routing table lacks whom, by peer index: what a bring-back that did not
    finish left, for the row to say."""
    ids = {mesh.status(p.index)["node_id"]: p.index for p in mesh.peers if p.alive}
    gaps = []
    for peer in (p for p in mesh.peers if p.alive):
        known = {entry["node_id"] for entry in mesh.control(peer.index, "peers")["peers"]}
        lacking = sorted(i for node, i in ids.items() if i != peer.index and node not in known)
        if lacking:
            gaps.append(f"peer {peer.index} lacks {', '.join(map(str, lacking))}")
    return "; ".join(gaps) or "every table whole by then"


def churn_table(result: ChurnResult) -> Table:
    t = Table(title="restore under churn", caption="seconds: the owner's peer reports them")
    for column in ("measure", "seconds", "detail", "check"):
        t.add_column(column)
    t.add_row(*result.row())
    for number, r in enumerate(result.rounds, 1):
        lost = ", ".join(f"peer {x.peer} {x.how} at +{x.at_seconds:.1f}s" for x in r.losses)
        t.add_row(f"  round {number}", f"{r.calm_seconds:.2f} / {r.churn_seconds:.2f}", lost, "")
    return t


def churn_only(dataset: Dataset, options: Any, console: Any, log: Any) -> int:
    """`--churn only`: this row alone, its JSON beside the usual results file."""
    workdir = Path(tempfile.mkdtemp(prefix="p2pbackup-churn-", dir=options.workdir))
    try:
        result = run_churn(dataset, workdir, log)
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    console.print(churn_table(result))
    output = options.output.with_name(options.output.stem + "-churn.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    log(f"wrote {output}")
    return 0
