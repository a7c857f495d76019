"""`make bench`: the codec's single-thread limit, then a real mesh, side by side.

The question this answers is "how much of what the codec could do does a real
backup get?". Both sides see the same bytes (a fixed real dataset of at least
100 MB, read once beforehand so neither pays for the disk), and every rate is
dataset bytes over seconds, in MB = 10^6 bytes. The targets are printed, never
enforced: a benchmark that fails the build on a slow CI machine gets deleted.

Between the two ends, two diagnostic rows run the real `BackupEngine` in this
process without a network, with and without worker-thread hops, so a missed
target points at the codec, the engine, or the mesh. A peer runs the engine
inline, in an engine process of its own, so the inline row is the one to
compare with the mesh.

Owners count a share placed only once its holder proved it. What that costs
is measured in the same run: first backups by owners that take their
holders' word alternate with the others, and the medians are compared.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.churn import ChurnResult, churn_only, churn_table, run_churn
from benchmarks.dataset import choose, warm_cache
from benchmarks.durability import rows as durability_rows
from benchmarks.durability import run_durability
from benchmarks.engine import run_engine
from benchmarks.figures import (
    MB,
    PEAK_TARGET_MB,
    RATIO_TARGET,
    Run,
    median_run,
    rate,
    spread,
)
from benchmarks.filesystem import filesystem_of
from benchmarks.mesh import Timed, run_mesh
from benchmarks.pipeline import PipelineResult, run_pipeline
from benchmarks.relay_testbed import rows as relay_rows
from benchmarks.relay_testbed import run_relay_backups
from benchmarks.report import report
from p2pbackup.peer.heap import keep_freed_pages

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def _mark(ok: bool) -> str:
    return "[green]PASS[/]" if ok else "[red]FAIL[/]"


def _plain(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _cpu(timed: Timed) -> str:
    """Where the cores went during one command: the owner (and the engine process it
    ran the job in) versus the nine holders."""
    if not timed.cpu_seconds:
        return ""
    owner = timed.cpu_seconds[timed.owner]
    others = sum(timed.cpu_seconds) - owner
    child = timed.engine_process
    started = ""
    if "cpu_seconds" in child:
        user, kernel = child.get("user_seconds", 0), child.get("system_seconds", 0)
        started = (
            f" + its engine process {child['cpu_seconds']:.1f} "
            f"({user:.1f} user, {kernel:.1f} kernel)"
        )
    return f"CPU s: owner {owner:.1f}{started}, other 9 peers {others:.1f}"


def table(run: Run) -> Table:
    """Everything on one screen: what was measured, the rate, and the verdict."""
    pipe, mesh = run.pipe, run.mesh
    t = Table(
        title=f"p2pbackup benchmark: {run.dataset.name}, {run.dataset.files:,} files, "
        f"{run.dataset.bytes / MB:.1f} MB",
        caption="MB = 10^6 bytes; MB/s = dataset bytes / seconds. Mesh rows: peer-reported "
        "seconds (wall time around the CLI command in brackets).",
    )
    t.add_column("measure")
    t.add_column("seconds", justify="right")
    t.add_column("MB/s", justify="right")
    t.add_column("detail")
    t.add_column("target")

    runs = ", ".join(f"{p.seconds:.2f}" for p in run.pipelines)
    t.add_row(
        f"pipeline limit (1 thread, no network, best of {len(run.pipelines)})",
        f"{pipe.seconds:.2f}",
        f"{run.limit:.1f}",
        f"runs {runs} s; {pipe.chunks_new:,} new of {pipe.chunks:,} chunks, "
        f"{pipe.packs} packs, {pipe.pack_bytes / MB:.1f} MB packed, "
        f"{pipe.minor_faults:,} page faults",
        "",
    )
    other = pipe.seconds - sum(pipe.phases.values())
    phases = ", ".join(f"{k} {s:.2f}" for k, s in pipe.phases.items())
    t.add_row("  phases (s)", "", "", f"{phases}, other {other:.2f}", "")
    for eng, label in (
        (run.threaded, "engine in-process, no network, to_thread"),
        (run.inline, "engine in-process, no network, inline"),
    ):
        hops = sum(eng.hops.values())
        t.add_row(
            f"{label} (diagnostic)",
            f"{eng.seconds:.2f}",
            f"{run.rate(eng.seconds):.1f}",
            f"{run.rate(eng.seconds) / run.limit:.2f}x limit; {hops:,} run_sync calls"
            + (" to worker threads" if eng.mode == "to_thread" else " run inline"),
            "",
        )
    rows: list[tuple[str, Timed, str, str]] = [
        (
            f"first backup (best of {len(run.mesh.firsts)}: peer {run.first.owner})",
            run.first,
            "runs " + ", ".join(f"{t.peer_seconds:.2f}" for t in run.mesh.firsts) + " s; "
            f"{run.first.result.get('chunks_new', 0):,} new chunks, "
            f"{run.first.result.get('packs', 0)} packs, "
            f"{run.first.result.get('bytes_sent', 0) / MB:.1f} MB sent; {_cpu(run.first)}",
            f"≥ {RATIO_TARGET:g}x limit: {run.ratio:.2f}x {_mark(run.ratio_ok)}",
        ),
        (
            f"  the same without share proofs (median of {len(run.mesh.unproven)}, alternated)",
            median_run(run.mesh.unproven),
            "runs " + ", ".join(f"{t.peer_seconds:.2f}" for t in run.mesh.unproven) + " s; "
            f"with proofs: median {median_run(run.mesh.firsts).peer_seconds:.2f} s",
            f"proofs cost: {run.proofs_cost:.2f}x (medians), {run.proofs_cost_best:.2f}x (best)",
        ),
        (
            "second backup (unchanged)",
            run.second,
            f"{run.second.result.get('files_unchanged', 0):,} files unchanged, "
            f"{run.second.result.get('bytes_sent', 0) / MB:.2f} MB sent",
            "",
        ),
        (
            f"restore latest (best of {len(run.mesh.restores)})",
            run.restore,
            "runs " + ", ".join(f"{t.peer_seconds:.2f}" for t in run.mesh.restores) + " s; "
            f"{run.restore.result.get('files_restored', 0):,} files restored, "
            f"{run.restore.result.get('bytes', 0) / MB:.1f} MB; {_cpu(run.restore)}",
            f"≥ backup rate {_mark(run.restore_ok)}",
        ),
    ]
    for name, timed, detail, target in rows:
        t.add_row(
            name,
            f"{timed.peer_seconds:.2f} ({timed.wall_seconds:.2f})",
            f"{run.rate(timed.peer_seconds):.1f}",
            detail,
            target,
        )
    probes = " and ".join(f"{t:.2f}" for t in mesh.file_creation_seconds)
    t.add_row(
        "machine: create as many empty files (reference)",
        probes,
        "",
        f"{run.dataset.files:,} files, just before and after the restores",
        "",
    )
    verified = "identical" if not mesh.problems else f"{len(mesh.problems)} differences"
    t.add_row(
        "restore check (byte for byte)",
        "",
        "",
        f"each restore: {mesh.verified_files:,} files, {mesh.verified_bytes / MB:.1f} MB: "
        f"{verified}",
        _mark(not mesh.problems),
    )
    each = " ".join(f"{kib * 1024 / MB:.0f}" for kib in mesh.peak_rss_kib)
    engines = " ".join(f"{kib * 1024 / MB:.0f}" for kib in mesh.engine_rss_kib)
    t.add_row(
        "peak RSS per process (MB)",
        "",
        "",
        f"max {run.peak_mb:.0f}; each peer (peer 0 first) {each}; "
        f"engine processes {engines or 'none'}",
        f"≤ {PEAK_TARGET_MB} MB {_mark(run.peak_ok)}",
    )
    t.add_row("mesh ready (10 routing tables full)", f"{mesh.ready_seconds:.2f}", "", "", "")
    for measure, detail in durability_rows(run.durability) if run.durability else []:
        t.add_row(measure, "", "", detail, "")
    for measure, detail in relay_rows(run.relay) if run.relay else []:
        t.add_row(measure, "", "", detail, "")
    t.add_row("machine: filesystem of the run folder", "", "", _filesystem(run), "")
    return t


def _filesystem(run: Run) -> str:
    return run.filesystem.describe() if run.filesystem else "unknown"


def markdown(run: Run) -> str:
    """A snippet for README.md: same figures, plain-text verdicts."""
    size = run.dataset.bytes
    probes = " and ".join(f"{t:.1f}" for t in run.mesh.file_creation_seconds)
    today = datetime.date.today().isoformat()
    lines = [
        f"Benchmark ({today}, {os.cpu_count()} CPUs, Python {platform.python_version()}): "
        f"`{run.dataset.name}`, {run.dataset.files:,} files, {size / MB:.1f} MB; "
        "10 peer processes on loopback, k=3 of n=10. MB/s = dataset bytes / seconds "
        "(MB = 10^6 bytes); mesh rows use the seconds the peer reports. "
        "`make bench` reproduces it.",
        "",
        "| measure | seconds | MB/s | target |",
        "|---|---:|---:|---|",
        f"| codec pipeline limit (1 thread, no network) | {run.pipe.seconds:.1f} | "
        f"{run.limit:.1f} | |",
        f"| backup engine, no network (diagnostic) | {run.inline.seconds:.1f} | "
        f"{run.rate(run.inline.seconds):.1f} | |",
        f"| first backup, 10-peer mesh (best of {len(run.mesh.firsts)}) | "
        f"{run.first.peer_seconds:.1f} | "
        f"{run.backup_rate:.1f} | ≥ {RATIO_TARGET:g}x limit: {run.ratio:.2f}x "
        f"{_plain(run.ratio_ok)} |",
        f"| first backup with share proofs / without, median (range) of "
        f"{len(run.mesh.firsts)} each, alternated | {spread(run.mesh.firsts)} / "
        f"{spread(run.mesh.unproven)} | | proofs cost "
        f"{run.proofs_cost:.2f}x (medians), {run.proofs_cost_best:.2f}x (best) |",
        f"| second backup, unchanged | {run.second.peer_seconds:.1f} | "
        f"{run.rate(run.second.peer_seconds):.1f} | |",
        f"| restore (best of {len(run.mesh.restores)}) | {run.restore.peer_seconds:.1f} | "
        f"{run.restore_rate:.1f} | "
        f"≥ backup rate {_plain(run.restore_ok)} |",
        f"| peak RSS, largest process | | | {run.peak_mb:.0f} MB ≤ {PEAK_TARGET_MB} MB "
        f"{_plain(run.peak_ok)} |",
        f"| machine: create {run.dataset.files:,} empty files, before and after the "
        f"restores (reference) | {probes} | | |",
        f"| machine: filesystem of the mesh and the restore | | | {_filesystem(run)} |",
    ]
    for measure, detail in durability_rows(run.durability) if run.durability else []:
        lines.insert(-1, f"| {measure} | | | {detail} |")
    for measure, detail in relay_rows(run.relay) if run.relay else []:
        lines.insert(-1, f"| {measure} | | | {detail} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, help="back up this folder instead")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the mesh's files afterwards")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="run the mesh and restore in a new folder here (default: the system's temp folder)",
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
    # Piped output (make, CI logs) would otherwise wrap the table at 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    began = time.monotonic()
    load = {"start": list(os.getloadavg())}

    def log(text: str) -> None:
        console.print(f"[dim]{time.monotonic() - began:6.1f}s[/] {text}")

    # The peers and engine processes keep freed heap pages (decision 0013); the
    # limit, measured in this process, gets the same advantage.
    keep_freed_pages()
    dataset = choose(options.source)
    log(f"dataset {dataset.name}: {dataset.files:,} files, {dataset.bytes / MB:.1f} MB")
    warm_cache(dataset)
    if options.churn == "only":
        return churn_only(dataset, options, console, log)
    pipelines: list[PipelineResult] = []

    def measure_limit(owner: int) -> None:
        # The limit is the best of as many runs as there are first backups, each run
        # just before one of them: this machine's speed drifts by a third within
        # minutes, and both sides of the ratio must see the same minutes. One slow
        # run (page faults, other processes) would flatter the ratio; the best won't.
        pipelines.append(run_pipeline(dataset))
        took = pipelines[-1].seconds
        speed = rate(dataset.bytes, took)
        log(f"pipeline limit, before peer {owner}'s first backup: {took:.2f}s, {speed:.1f} MB/s")

    engines = []
    for threaded in (True, False):
        engines.append(run_engine(dataset, threaded))
        eng = engines[-1]
        log(f"engine, {eng.mode}: {eng.seconds:.2f}s, {rate(dataset.bytes, eng.seconds):.1f} MB/s")

    workdir = Path(tempfile.mkdtemp(prefix="p2pbackup-bench-", dir=options.workdir))
    filesystem = filesystem_of(workdir)
    if filesystem is not None:
        log(f"run folder {workdir}: {filesystem.describe()}")
        if filesystem.journal is False:
            log(
                "[yellow]the restore here will be slow if many files were removed in the "
                "last few minutes (an earlier run, a test run); --workdir picks another "
                "filesystem[/]"
            )
    churn: ChurnResult | None = None
    try:
        durability = run_durability(workdir)
        for measure, detail in durability_rows(durability):
            log(f"{measure}: {detail}")
        mesh = run_mesh(dataset, workdir, log, before_first_backup=measure_limit)
        relay = run_relay_backups(workdir, log)
        if options.churn == "also":
            churn = run_churn(dataset, workdir, log)
    finally:
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    load["end"] = list(os.getloadavg())
    run = Run(dataset, pipelines, engines[0], engines[1], mesh, load, filesystem=filesystem)
    run.durability = durability
    run.relay = relay
    run.total_seconds = time.monotonic() - began
    log(f"load average (1 min): {load['start'][0]:.1f} at start, {load['end'][0]:.1f} at end")
    console.print(table(run))
    for problem in mesh.problems[:10]:
        console.print(f"[red]  {problem}")
    if churn is not None:
        console.print(churn_table(churn))
    # Plain print: rich would wrap the lines and break the Markdown table.
    print("\nMarkdown for README.md:\n")
    print(markdown(run), flush=True)

    options.output.parent.mkdir(parents=True, exist_ok=True)
    record = report(run)
    if churn is not None:
        record["restore_under_churn"] = churn.as_dict()
    options.output.write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
