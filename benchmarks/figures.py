"""The figures of one benchmark run, and the verdicts drawn from them.

Kept apart from `run`, which measures and prints: what a run found is one
thing, how it is shown another.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from benchmarks.dataset import Dataset
from benchmarks.durability import Durability
from benchmarks.engine import EngineResult
from benchmarks.filesystem import Filesystem
from benchmarks.mesh import MeshResult, Timed
from benchmarks.pipeline import PipelineResult
from benchmarks.relay_testbed import RelayBackups

MB = 1_000_000
RATIO_TARGET = 0.5  # backup must reach half the single-thread codec limit
PEAK_TARGET_MB = 300  # per process (peers and their engine processes), VmHWM


def rate(size: int, seconds: float) -> float:
    return size / seconds / MB if seconds > 0 else 0.0


@dataclass
class Run:
    """Every measurement of one benchmark run, and the verdicts drawn from them."""

    dataset: Dataset
    pipelines: list[PipelineResult]
    threaded: EngineResult
    inline: EngineResult
    mesh: MeshResult
    load: dict[str, list[float]] = field(default_factory=dict)
    total_seconds: float = 0.0
    filesystem: Filesystem | None = None  # where the mesh and the restore wrote
    durability: Durability | None = None  # synchronous FULL against NORMAL, same disk
    relay: RelayBackups | None = None  # a backup through a relay against direct (NAT testbed)

    @property
    def pipe(self) -> PipelineResult:
        return min(self.pipelines, key=lambda p: p.seconds)

    @property
    def first(self) -> Timed:
        assert self.mesh.first is not None
        return self.mesh.first

    @property
    def second(self) -> Timed:
        assert self.mesh.second is not None
        return self.mesh.second

    @property
    def restore(self) -> Timed:
        assert self.mesh.restore is not None
        return self.mesh.restore

    def rate(self, seconds: float) -> float:
        return rate(self.dataset.bytes, seconds)

    @property
    def limit(self) -> float:
        return self.rate(self.pipe.seconds)

    @property
    def backup_rate(self) -> float:
        return self.rate(self.first.peer_seconds)

    @property
    def restore_rate(self) -> float:
        return self.rate(self.restore.peer_seconds)

    @property
    def ratio(self) -> float:
        return self.backup_rate / self.limit if self.limit else 0.0

    @property
    def proofs_cost(self) -> float:
        """Median first backup with share proofs over the median without: what counting a
        share only once its holder proved it costs a first backup."""
        with_proofs = statistics.median(t.peer_seconds for t in self.mesh.firsts)
        without = statistics.median(t.peer_seconds for t in self.mesh.unproven)
        return with_proofs / without if without else 0.0

    @property
    def proofs_cost_best(self) -> float:
        """The same with the fastest of each side: noise only ever adds time."""
        without = min((t.peer_seconds for t in self.mesh.unproven), default=0.0)
        return self.first.peer_seconds / without if without else 0.0

    @property
    def peak_mb(self) -> float:
        """The largest peak of any process: a peer, or an engine process a peer started."""
        return max(self.mesh.peak_rss_kib + self.mesh.engine_rss_kib, default=0) * 1024 / MB

    @property
    def ratio_ok(self) -> bool:
        return self.ratio >= RATIO_TARGET

    @property
    def restore_ok(self) -> bool:
        return self.restore_rate >= self.backup_rate

    @property
    def peak_ok(self) -> bool:
        return self.peak_mb <= PEAK_TARGET_MB


def median_run(runs: list[Timed]) -> Timed:
    """The run of median peer-reported time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda t: t.peer_seconds)
    return ordered[(len(ordered) - 1) // 2]


def spread(runs: list[Timed]) -> str:
    times = [t.peer_seconds for t in runs]
    return f"{statistics.median(times):.2f} ({min(times):.2f} to {max(times):.2f})"
