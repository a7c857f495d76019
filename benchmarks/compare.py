"""p2pbackup against restic and borg: the rows, every run's figures, and the ratios.

Each row is timed the same way for every tool: wall seconds around the whole
command, from this process. A row's figure is the median of its runs, shown
with the spread (min to max); the ratio p2pbackup / restic is of the medians.
The targets are printed, never enforced.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from benchmarks.pipeline import PipelineResult

OURS = "p2pbackup"
# (key, what the row measures, the dataset it reads or writes)
ROWS = (
    ("tree_first", "first backup of the tree", "tree"),
    ("tree_unchanged", "unchanged backup of the tree", "tree"),
    ("tree_changed", "1%-changed backup of the tree", "tree"),
    ("big_backup", "big-file backup", "big"),
    ("tree_restore", "restore of the tree", "tree"),
    ("big_restore", "restore of the big file", "big"),
)
# The most p2pbackup may take, as a multiple of restic's median, per row.
RESTIC_TARGETS = {
    "tree_first": 1.0,
    "tree_unchanged": 1.2,
    "tree_changed": 1.2,
    "big_backup": 1.3,
    "tree_restore": 1.0,
    "big_restore": 1.0,
}
BIG_LIMIT_TARGET = 0.5  # our big-file backup reaches at least this fraction of its limit
TREE_LIMIT_TARGET = 0.5  # and the first backup of the tree the same of the tree's


@dataclass
class Sample:
    """One timed command of one tool in one round."""

    tool: str
    row: str
    round: int
    seconds: float  # wall time around the command
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"round": self.round, "seconds": round(self.seconds, 3), **self.detail}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def spread(values: list[float]) -> str:
    """'median (min to max)', or '-' without runs."""
    if not values:
        return "-"
    return f"{median(values):.2f} ({min(values):.2f} to {max(values):.2f})"


def ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over median; 0 when either side has no runs."""
    if not ours or not theirs or median(theirs) <= 0:
        return 0.0
    return median(ours) / median(theirs)


@dataclass
class Comparison:
    """Every run of every row, the limits measured beside them, and what was skipped."""

    tools: list[str]
    versions: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    unproven: list[Sample] = field(default_factory=list)  # peer 1's first backups
    tree_limits: list[PipelineResult] = field(default_factory=list)
    big_limits: list[PipelineResult] = field(default_factory=list)
    peer_peak_kib: list[int] = field(default_factory=list)  # max per peer over the rounds
    engine_peak_kib: list[int] = field(default_factory=list)  # each engine process
    mesh_ready_seconds: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # commands that failed, left out
    broken: set[tuple[str, int, str]] = field(default_factory=set)  # tool, round, dataset

    def runs(self, tool: str, row: str) -> list[Sample]:
        return [s for s in self.samples if s.tool == tool and s.row == row]

    def seconds(self, tool: str, row: str) -> list[float]:
        return [s.seconds for s in self.runs(tool, row)]

    def peer_seconds(self, row: str, samples: list[Sample] | None = None) -> list[float]:
        """What our peer reported for the command (no CLI start): for the limits."""
        chosen = self.runs(OURS, row) if samples is None else samples
        return [float(s.detail.get("peer_seconds", s.seconds)) for s in chosen]

    def ratio(self, row: str, rival: str) -> float:
        return ratio(self.seconds(OURS, row), self.seconds(rival, row))

    def limit_fraction(self, row: str) -> float:
        """Median limit seconds over our median peer-reported seconds: the share of
        the codec's single-thread rate the real backup reached."""
        limits = self.big_limits if row == "big_backup" else self.tree_limits
        ours = median(self.peer_seconds(row))
        return median([p.seconds for p in limits]) / ours if ours else 0.0

    @property
    def peak_mb(self) -> float:
        """The largest peak of our processes: a peer or an engine process."""
        return max(self.peer_peak_kib + self.engine_peak_kib, default=0) * 1024 / 1e6

    @property
    def proofs_cost(self) -> float:
        """Peer 0's median first backup (shares proven) over peer 1's (unproven)."""
        return ratio(self.peer_seconds("tree_first"), self.peer_seconds("", self.unproven))

    def verdicts(self, peak_target_mb: float) -> list[tuple[str, str, bool]]:
        """(target, value, met) for each target that has its figures."""
        out: list[tuple[str, str, bool]] = []
        if "restic" in self.tools:
            for key, label, _ in ROWS:
                value, most = self.ratio(key, "restic"), RESTIC_TARGETS[key]
                out.append((f"{label} ≤ {most:g}x restic", f"{value:.2f}x", 0 < value <= most))
        for key, target in (("big_backup", BIG_LIMIT_TARGET), ("tree_first", TREE_LIMIT_TARGET)):
            value = self.limit_fraction(key)
            label = dict((k, n) for k, n, _ in ROWS)[key]
            out.append((f"{label} ≥ {target:g} of its limit", f"{value:.2f}", value >= target))
        peak = self.peak_mb
        out.append(
            (f"peak memory ≤ {peak_target_mb:g} MB", f"{peak:.0f} MB", peak <= peak_target_mb)
        )
        same = f"{len(self.problems)} differences"
        out.append(("restores identical byte for byte", same, not self.problems))
        failed = f"{len(self.failures)} failed"
        out.append(("every command succeeded", failed, not self.failures))
        return out

    def as_dict(self, peak_target_mb: float) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        for key, label, dataset in ROWS:
            rows[key] = {"measure": label, "dataset": dataset}
            for tool in self.tools:
                times = self.seconds(tool, key)
                rows[key][tool] = {
                    "median_seconds": round(median(times), 3),
                    "min_seconds": round(min(times), 3) if times else None,
                    "max_seconds": round(max(times), 3) if times else None,
                    "runs": [s.as_dict() for s in self.runs(tool, key)],
                }
            for rival in self.tools[1:]:
                rows[key][f"ratio_{OURS}_over_{rival}"] = round(self.ratio(key, rival), 3)
        return {
            "timing": "wall seconds around each command, from the bench process; "
            "median and min to max over the runs",
            "tools": self.tools,
            "versions": self.versions,
            "skipped": self.skipped,
            "rows": rows,
            "first_backups_unproven": [s.as_dict() for s in self.unproven],
            "proofs_cost_median": round(self.proofs_cost, 3),
            "tree_limit_runs": [p.as_dict() for p in self.tree_limits],
            "big_limit_runs": [p.as_dict() for p in self.big_limits],
            "big_backup_over_limit": round(self.limit_fraction("big_backup"), 3),
            "tree_first_over_limit": round(self.limit_fraction("tree_first"), 3),
            "peak_rss_kib": {
                "peers": self.peer_peak_kib,
                "engine_processes": self.engine_peak_kib,
            },
            "mesh_ready_seconds": [round(s, 2) for s in self.mesh_ready_seconds],
            "targets": [
                {"target": t, "value": v, "pass": ok} for t, v, ok in self.verdicts(peak_target_mb)
            ],
            "problems": self.problems[:20],
            "failures": self.failures,
        }
