"""The figures of one benchmark run, and the verdicts drawn from them.

Kept apart from `run`, which measures and prints: what a run found is one
thing, how it is shown another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.churn import ChurnResult
from benchmarks.compare import Comparison
from benchmarks.durability import Durability
from benchmarks.engine import EngineResult
from benchmarks.filesystem import Filesystem
from benchmarks.relay_testbed import RelayBackups
from benchmarks.workload import Workload

MB = 1_000_000
PEAK_TARGET_MB = 300  # per process (peers and their engine processes), VmHWM


def rate(size: int, seconds: float) -> float:
    return size / seconds / MB if seconds > 0 else 0.0


@dataclass
class Run:
    """Every measurement of one benchmark run."""

    workload: Workload
    threaded: EngineResult
    inline: EngineResult
    comparison: Comparison
    load: dict[str, list[float]] = field(default_factory=dict)
    total_seconds: float = 0.0
    filesystem: Filesystem | None = None  # where every tool wrote
    durability: Durability | None = None  # synchronous FULL against NORMAL, same disk
    relay: RelayBackups | None = None  # a backup through a relay against direct (NAT testbed)
    churn: ChurnResult | None = None  # a restore while holders are lost

    def rate(self, seconds: float) -> float:
        return rate(self.workload.tree.bytes, seconds)
