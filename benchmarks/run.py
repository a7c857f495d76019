"""`make bench`: p2pbackup against restic and borg, on the same data, in the same run.

The question this answers is "what does a user lose, in time, by picking
p2pbackup over the tools they would pick instead?". Every tool backs up and
restores the same bytes in the same folder (`--workdir`): a real tree (the
machine's /usr/include, copied in), one incompressible 200 MB file, and the
tree again with 1% of its files changed. Every command is timed the same way
(wall time around it) in rounds that interleave the tools, and each row shows
the median and the spread of its runs. restic and borg run when they are on
PATH; otherwise the bench says so and how to install them. Nothing is ever
downloaded. The targets are printed, never enforced: a benchmark that fails
the build on a slow CI machine gets deleted.

Beside the comparison it measures the codec's single-thread limit for each
dataset (chunk, hash, compress attempt, encrypt, erasure-code, no network),
two in-process engine diagnostics, what durable writes and share proofs
cost, a backup through a relay (NAT testbed) and a restore under churn.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

import p2pbackup
from benchmarks import compare_view
from benchmarks.churn import churn_only, churn_table, run_churn
from benchmarks.dataset import Dataset, choose, warm_cache
from benchmarks.durability import rows as durability_rows
from benchmarks.durability import run_durability
from benchmarks.engine import run_engine
from benchmarks.figures import MB, PEAK_TARGET_MB, Run
from benchmarks.filesystem import filesystem_of
from benchmarks.relay_testbed import rows as relay_rows
from benchmarks.relay_testbed import run_relay_backups
from benchmarks.report import report
from benchmarks.rivals import find_rivals
from benchmarks.rounds import run_rounds
from benchmarks.workload import BIG_BYTES, prepare
from p2pbackup.peer.heap import keep_freed_pages

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
RUNS = 5
Log = Callable[[str], None]


def other_rows(run: Run) -> list[tuple[str, str]]:
    """The rows beside the comparison: diagnostics and costs, as (measure, detail)."""
    rows = []
    for eng, label in (
        (run.threaded, "engine in-process, no network, to_thread"),
        (run.inline, "engine in-process, no network, inline"),
    ):
        rows.append(
            (
                f"{label} (diagnostic, tree)",
                f"{eng.seconds:.2f} s, {run.rate(eng.seconds):.1f} MB/s; "
                f"{sum(eng.hops.values()):,} run_sync calls",
            )
        )
    rows += durability_rows(run.durability) if run.durability else []
    rows += relay_rows(run.relay) if run.relay else []
    if run.churn is not None:
        measure, seconds, detail, check = run.churn.row()
        rows.append((measure, f"{seconds} s; {detail}; {check}"))
    fs = run.filesystem.describe() if run.filesystem else "unknown"
    rows.append(("machine: filesystem of the run folder (every tool)", fs))
    return rows


def table(run: Run) -> Table:
    t = Table(title="p2pbackup benchmark: diagnostics and costs")
    t.add_column("measure")
    t.add_column("detail")
    for measure, detail in other_rows(run):
        t.add_row(measure, detail)
    return t


def markdown(run: Run) -> str:
    """A snippet for README.md: same figures, plain-text verdicts."""
    today = datetime.date.today().isoformat()
    lines = [
        f"Benchmark ({today}, {os.cpu_count()} CPUs, Python {platform.python_version()}). "
        "`make bench` reproduces it.",
        "",
        *compare_view.markdown(run.comparison, run.workload, PEAK_TARGET_MB),
    ]
    lines += [f"| {measure} | {detail} |" for measure, detail in other_rows(run)]
    return "\n".join(lines)


def _options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, help="back up this folder instead of the tree")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the run folder afterwards")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="make the run folder here: every tool reads and writes on its filesystem "
        "(default: the system's temp folder)",
    )
    parser.add_argument("--runs", type=int, help=f"rounds of the comparison (default {RUNS})")
    parser.add_argument(
        "--big-mb", type=int, default=BIG_BYTES // MB, help="size of the big file, MB"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="to try the harness: one round (unless --runs), a 20 MB big file, no durability, "
        "relay or churn rows",
    )
    parser.add_argument(
        "--churn",
        choices=("also", "only", "skip"),
        default="also",
        help="the restore-under-churn row: after the others (also), alone, or not at all",
    )
    options = parser.parse_args(argv)
    if options.workdir is not None and not options.workdir.is_dir():
        parser.error(f"--workdir {options.workdir}: no such folder")
    if options.quick:
        options.big_mb, options.churn = min(options.big_mb, 20), "skip"
    if options.runs is None:
        options.runs = 1 if options.quick else RUNS
    return options


def main(argv: list[str] | None = None) -> int:
    options = _options(argv)
    # Piped output (make, CI logs) would otherwise wrap the table at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 180)
    began = time.monotonic()
    load = {"start": list(os.getloadavg())}

    def log(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - began:6.1f}s[/] {text}")

    # The peers and engine processes keep freed heap pages (decision 0013); the
    # limit, measured in this process, gets the same advantage.
    keep_freed_pages()
    source = choose(options.source)
    if options.churn == "only":
        warm_cache(source)
        return churn_only(source, options, console, log)
    # An installed package has its bytecode compiled; an editable checkout run
    # with PYTHONDONTWRITEBYTECODE would recompile every module in every timed
    # command and charge p2pbackup for it.
    compileall.compile_dir(Path(p2pbackup.__file__).parent, quiet=1)
    workdir = Path(tempfile.mkdtemp(prefix="p2pbackup-bench-", dir=options.workdir))
    try:
        run = _measure(options, source, workdir, log)
    finally:
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load["end"] = list(os.getloadavg())
    run.load = load
    run.total_seconds = time.monotonic() - began
    log(f"load average (1 min): {load['start'][0]:.1f} at start, {load['end'][0]:.1f} at end")
    console.print(compare_view.table(run.comparison, run.workload, PEAK_TARGET_MB))
    for problem in run.comparison.problems[:10]:
        console.print(f"[red]  {problem}")
    console.print(table(run))
    if run.churn is not None:
        console.print(churn_table(run.churn))
    # Plain print: rich would wrap the lines and break the Markdown table.
    print("\nMarkdown for README.md:\n")
    print(markdown(run), flush=True)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    record = report(run)
    if run.churn is not None:
        record["restore_under_churn"] = run.churn.as_dict()
    options.output.write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {options.output} ({run.total_seconds:.0f} s in all)")
    return 0


def _measure(options: argparse.Namespace, source: Dataset, workdir: Path, log: Log) -> Run:
    """Lay the data out in `workdir`, then every measurement in turn."""
    filesystem = filesystem_of(workdir)
    if filesystem is not None:
        log(f"run folder {workdir}: {filesystem.describe()}")
    _check_space(workdir, source, options.big_mb * MB, log)
    log(f"copying {source.name} and writing a {options.big_mb} MB file into the run folder")
    workload = prepare(source, workdir, options.big_mb * MB)
    tree = workload.tree
    log(f"tree: {tree.files:,} files, {tree.bytes / MB:.1f} MB; {len(workload.changed)} change")
    warm_cache(tree)
    warm_cache(workload.big)
    engines = []
    for threaded in (True, False):
        engines.append(run_engine(tree, threaded))
        eng = engines[-1]
        log(f"engine, {eng.mode}: {eng.seconds:.2f}s, {tree.bytes / MB / eng.seconds:.1f} MB/s")
    durability = None if options.quick else run_durability(workdir)
    for measure, detail in durability_rows(durability) if durability else []:
        log(f"{measure}: {detail}")
    rivals, skipped = find_rivals(workdir)
    for line in skipped:
        log(f"[yellow]skipped {line}[/]")
    comparison = run_rounds(workload, rivals, skipped, options.runs, log)
    relay = None if options.quick else run_relay_backups(workdir, log)
    run = Run(workload, engines[0], engines[1], comparison, filesystem=filesystem)
    run.durability, run.relay = durability, relay
    if options.churn == "also":
        run.churn = run_churn(tree, workdir, log)
    return run


def _check_space(workdir: Path, source: Dataset, big: int, log: Log) -> None:
    """Say early when the run folder's filesystem is likely too small: the tree and the
    big file, the big file's shares on ten holders (10/3 of it), its restore, and the
    tree's shares and restores."""
    need = 2 * source.bytes + big * (1 + 10 / 3 + 1) + 100 * MB
    free = shutil.disk_usage(workdir).free
    if free < need:
        log(
            f"[yellow]{free / MB:,.0f} MB free where the run needs about {need / MB:,.0f} MB; "
            "--workdir picks another filesystem, --big-mb a smaller file[/]"
        )


if __name__ == "__main__":
    sys.exit(main())
