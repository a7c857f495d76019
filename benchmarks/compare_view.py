"""The comparison on screen and in the README: one line per row, one column per tool.

Kept apart from `compare`, which holds the figures: what was measured is one
thing, how it is shown another.
"""

from __future__ import annotations

import os

from rich.table import Table

from benchmarks.compare import OURS, ROWS, Comparison, median, spread
from benchmarks.workload import Workload

MB = 1_000_000


def caption(c: Comparison, w: Workload) -> str:
    runs = len(c.mesh_ready_seconds)
    tools = "; ".join(c.versions.values()) or "no other tool"
    return (
        f"Seconds: median (min to max) of {runs} runs, wall time around each command "
        "(ours: the `p2pbackup` CLI process asking the running peer; theirs: the tool's "
        "process), each after a `sync` and once the mesh's processes are idle, tools "
        f"interleaved round by round. {tools}; their caches sit in the run "
        f"folder. p2pbackup: 10 peers on loopback, k=3 of n=10. Tree: {w.tree.files:,} "
        f"files, {w.tree.bytes / MB:.1f} MB; 1% change: {len(w.changed)} files rewritten in "
        f"part; big file: {w.big.bytes / MB:.0f} MB of random bytes."
    )


def _cells(c: Comparison, key: str) -> list[str]:
    cells = [spread(c.seconds(tool, key)) for tool in c.tools]
    cells += [f"{c.ratio(key, rival):.2f}x" for rival in c.tools[1:]]
    return cells


def table(c: Comparison, w: Workload, peak_target_mb: float) -> Table:
    t = Table(title="p2pbackup against restic and borg, same data, same run", caption=caption(c, w))
    t.add_column("measure")
    for tool in c.tools:
        t.add_column(f"{tool} s", justify="right")
    for rival in c.tools[1:]:
        t.add_column(f"ours / {rival}", justify="right")
    for key, label, _ in ROWS:
        t.add_row(label, *_cells(c, key))
    blank = [""] * (2 * len(c.tools) - 2)
    for name, value in limit_lines(c, w):
        t.add_row(name, value, *blank)
    for target, value, ok in c.verdicts(peak_target_mb):
        mark = "[green]PASS[/]" if ok else "[red]FAIL[/]"
        t.add_row(f"target: {target}", f"{value} {mark}", *blank)
    for skipped in c.skipped:
        t.add_row(f"[yellow]skipped {skipped}[/]", "", *blank)
    for failure in c.failures:
        t.add_row(f"[red]{failure}[/]", "", *blank)
    return t


def limit_lines(c: Comparison, w: Workload) -> list[tuple[str, str]]:
    """The limits and our backups as fractions of them, and the memory peaks."""
    big = [p.seconds for p in c.big_limits]
    tree = [p.seconds for p in c.tree_limits]
    ours_big = c.peer_seconds("big_backup")
    return [
        ("big-file pipeline limit (1 thread, no network), s", spread(big)),
        (
            "big-file backup as a fraction of the limit (medians; peer-reported s)",
            f"{c.limit_fraction('big_backup'):.2f}; ours {spread(ours_big)} s",
        ),
        ("tree pipeline limit (1 thread, no network), s", spread(tree)),
        (
            "first backup of the tree as a fraction of the limit",
            f"{c.limit_fraction('tree_first'):.2f}",
        ),
        (
            "first backup of the tree, shares proven / unproven (peer-reported s)",
            f"{spread(c.peer_seconds('tree_first'))} / "
            f"{spread(c.peer_seconds('', c.unproven))}: {c.proofs_cost:.2f}x",
        ),
        *cpu_lines(c),
        ("peak memory, MB (our largest process: a peer or an engine process)", f"{c.peak_mb:.0f}"),
        ("mesh ready (10 routing tables full), s", spread(c.mesh_ready_seconds)),
    ]


def markdown(c: Comparison, w: Workload, peak_target_mb: float) -> list[str]:
    """The comparison as a Markdown table and its caption, for README.md."""
    heads = [f"{tool} s" for tool in c.tools] + [f"ours / {r}" for r in c.tools[1:]]
    lines = [
        caption(c, w),
        "",
        "| measure | " + " | ".join(heads) + " |",
        "|---|" + "---:|" * len(heads),
    ]
    lines += [f"| {label} | " + " | ".join(_cells(c, key)) + " |" for key, label, _ in ROWS]
    lines += ["", "| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in limit_lines(c, w)]
    for target, value, ok in c.verdicts(peak_target_mb):
        lines.append(f"| target: {target} | {value} {'PASS' if ok else 'FAIL'} |")
    lines += [f"| skipped | {line} |" for line in c.skipped]
    lines += [f"| failed | {line} |" for line in c.failures]
    return lines


def cpu_lines(c: Comparison) -> list[tuple[str, str]]:
    """Where the cores went in our big-file backups (medians), and the fraction of the
    limit those CPU seconds allow at best: every core busy all the time. On a machine
    of two cores that bound, not the code's idle time, is what keeps the fraction low."""
    runs = c.runs(OURS, "big_backup")
    if not runs:
        return []

    def of(key: str) -> float:
        return median([float(s.detail.get(key) or 0) for s in runs])

    owner, engine = of("owner_peer_cpu_seconds"), of("engine_cpu_seconds")
    holders = of("other_peers_cpu_seconds")
    total, cores = owner + engine + holders, os.cpu_count() or 1
    limit = median([p.seconds for p in c.big_limits]) if c.big_limits else 0.0
    best = f"; at most {limit * cores / total:.2f} of the limit on {cores} cores" if total else ""
    return [
        (
            "big-file backup, CPU s of our processes: owner's peer / engine / 9 holders (medians)",
            f"{total:.1f} ({owner:.1f} / {engine:.1f} / {holders:.1f}){best}",
        )
    ]
