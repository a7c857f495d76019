"""The comparison's rounds: every tool, every row, once per round, interleaved.

A round starts a new ten-peer mesh (its homes copied from ones made once,
before any backup, so its peer 0 has never backed anything up and no holder
has anything of it) and a new repository for each other tool, then runs the rows in order,
each row for every tool before the next row: first backup of the tree,
unchanged backup, the 1% change, 1%-changed backup, restore of the tree. The
tools' order turns by one each round, so the machine's drift (its speed moves
by a third within minutes) hits all of them alike. The big file comes last,
tool by tool (backup, restore, then its repository or mesh removed): the
shares of a 200 MB file on ten holders take 670 MB, and three tools' copies
at once would not fit a small disk. Every restore is compared byte for byte
with what was backed up, then removed. Every timed command, whichever tool's,
starts after `settle`: dirty pages written out (`sync`) and the mesh quiet.
"""

from __future__ import annotations

import shutil
from typing import Any

from benchmarks.compare import OURS, Comparison, Sample
from benchmarks.mesh import (
    OWNER,
    PEERS,
    BenchMesh,
    Timed,
    _timed,
    peer_peaks,
    settle,
    start_mesh,
)
from benchmarks.pipeline import run_pipeline
from benchmarks.rivals import Rival
from benchmarks.workload import Workload
from p2pbackup.cli.demo import compare_trees

UNPROVEN = 1  # the peer whose first backups count shares unproven
Tool = str | Rival  # OURS, or another tool


def _name(tool: Tool) -> str:
    return tool if isinstance(tool, str) else tool.name


def run_rounds(
    workload: Workload, rivals: list[Rival], skipped: list[str], runs: int, log: Any = print
) -> Comparison:
    comparison = Comparison([OURS, *(r.name for r in rivals)], skipped=skipped)
    comparison.versions = {r.name: r.describe() for r in rivals}
    homes = workload.folder / "mesh-homes"
    log(f"making {PEERS} peer homes, copied afresh into each round's mesh")
    maker = BenchMesh(homes, PEERS)
    try:
        maker.init_all()
    finally:
        maker.close()  # the founder, started to invite the others
    try:
        for number in range(runs):
            log(f"round {number + 1} of {runs}")
            shutil.copytree(homes, workload.folder / f"mesh-{number}")
            _round(comparison, workload, rivals, number, log)
    finally:
        shutil.rmtree(homes, ignore_errors=True)
    return comparison


def _round(c: Comparison, w: Workload, rivals: list[Rival], number: int, log: Any) -> None:
    tools: list[Tool] = [OURS, *rivals]
    turn = number % len(tools)
    tools = tools[turn:] + tools[:turn]
    folder = w.folder / f"mesh-{number}"
    mesh, ready = start_mesh(folder, log)
    c.mesh_ready_seconds.append(ready)
    open_mesh: BenchMesh | None = mesh
    try:
        for rival in rivals:
            rival.fresh_repo()
        for row in ("tree_first", "tree_unchanged"):
            for tool in tools:
                _step(c, w, mesh, tool, row, number, log)
        w.change(number)
        try:
            for row in ("tree_changed", "tree_restore"):
                for tool in tools:
                    _step(c, w, mesh, tool, row, number, log)
        finally:
            w.undo()
        for tool in tools:
            for row in ("big_backup", "big_restore"):
                _step(c, w, mesh, tool, row, number, log)
            if isinstance(tool, Rival):
                tool.drop_repo()
            else:
                _close(c, mesh)
                open_mesh = None
    finally:
        if open_mesh is not None:
            open_mesh.close()
        shutil.rmtree(folder, ignore_errors=True)
        for rival in rivals:
            rival.drop_repo()


def _close(c: Comparison, mesh: BenchMesh) -> None:
    """Read every peer's peak memory, then stop the mesh."""
    peaks = peer_peaks(mesh)
    mesh.close()
    old = c.peer_peak_kib or [0] * len(peaks)
    c.peer_peak_kib = [max(a, b) for a, b in zip(old, peaks, strict=True)]


def _step(
    c: Comparison, w: Workload, mesh: BenchMesh, tool: Tool, row: str, number: int, log: Any
) -> None:
    """One tool's command for one row. A command that fails (a full disk, a tool's
    error) is reported and leaves its run out; the other runs go on."""
    relative = "big" if row.startswith("big") else "tree"
    if (_name(tool), number, relative) in c.broken:
        c.failures.append(f"{_name(tool)} {row} round {number + 1} skipped: its backup failed")
        return
    try:
        if row.endswith("restore"):
            sample = _restore(c, w, mesh, tool, row, number, relative, log)
        elif isinstance(tool, Rival):
            settle(mesh, log)
            done = tool.backup(relative)
            sample = Sample(tool.name, row, number, done.seconds, _rival_detail(c, tool, done))
        else:
            sample = _our_backup(c, w, mesh, row, number, relative, log)
    except (RuntimeError, OSError) as error:
        failure = f"{_name(tool)} {row} round {number + 1} failed: {str(error)[:300]}"
        c.failures.append(failure)
        c.broken.add((_name(tool), number, relative))
        log(f"[red]{failure}[/]")
        return
    c.samples.append(sample)
    log(f"{row} {sample.tool}: {sample.seconds:.2f}s")


def _our_backup(
    c: Comparison, w: Workload, mesh: BenchMesh, row: str, number: int, relative: str, log: Any
) -> Sample:
    """Ours, with the codec limit measured just before (same minutes) on a quiet machine,
    and for the first backup also peer 1's unproven one, before or after by turns."""
    source = str(w.folder / relative)
    if row == "tree_first" and number % 2:
        c.unproven.append(_unproven(c, mesh, source, number, log))
    settle(mesh, log)
    if row in ("tree_first", "big_backup"):
        limits = c.big_limits if row == "big_backup" else c.tree_limits
        limits.append(run_pipeline(w.big if row == "big_backup" else w.tree))
        log(f"pipeline limit, {relative}: {limits[-1].seconds:.2f}s")
        settle(mesh, log)
    timed = _timed(mesh, OWNER, "backup", source)
    sample = Sample(OURS, row, number, timed.wall_seconds, _our_detail(c, timed))
    if row == "tree_first" and not number % 2:
        c.unproven.append(_unproven(c, mesh, source, number, log))
    return sample


def _unproven(c: Comparison, mesh: BenchMesh, source: str, number: int, log: Any) -> Sample:
    settle(mesh, log)
    timed = _timed(mesh, UNPROVEN, "backup", source)
    log(f"first backup, shares unproven (peer {UNPROVEN}): {timed.peer_seconds:.2f}s")
    return Sample(OURS, "tree_first_unproven", number, timed.wall_seconds, _our_detail(c, timed))


def _restore(
    c: Comparison,
    w: Workload,
    mesh: BenchMesh,
    tool: Tool,
    row: str,
    number: int,
    relative: str,
    log: Any,
) -> Sample:
    """Restore the latest snapshot into a new folder, compare it, remove it."""
    target = w.folder / f"restored-{_name(tool)}-{row}-{number}"
    settle(mesh, log)
    if isinstance(tool, Rival):
        done = tool.restore(target)
        sample = Sample(tool.name, row, number, done.seconds, _rival_detail(c, tool, done))
        root = tool.restored(target, relative)
    else:
        timed = _timed(mesh, OWNER, "restore", "latest", "--target", str(target))
        sample = Sample(OURS, row, number, timed.wall_seconds, _our_detail(c, timed))
        root = target / relative
    try:
        files, size, problems = compare_trees(w.folder / relative, root)
        sample.detail.update(verified_files=files, verified_bytes=size, differences=len(problems))
        c.problems += [f"{sample.tool} {row} round {number}: {p}" for p in problems]
    finally:
        shutil.rmtree(target, ignore_errors=True)
    return sample


def _our_detail(c: Comparison, timed: Timed) -> dict[str, Any]:
    """The peer's own seconds, where the CPU went, and the engine process's peak."""
    engine = timed.engine_process
    if "peak_rss_kib" in engine:
        c.engine_peak_kib.append(int(engine["peak_rss_kib"]))
    owner = timed.cpu_seconds[timed.owner] if timed.cpu_seconds else 0.0
    return {
        "peer_seconds": timed.peer_seconds,
        "owner_peer_cpu_seconds": round(owner, 2),
        "engine_cpu_seconds": engine.get("cpu_seconds"),
        "other_peers_cpu_seconds": round(sum(timed.cpu_seconds) - owner, 2),
        "engine_peak_rss_kib": engine.get("peak_rss_kib"),
        "returncode": timed.returncode,
        "result": {k: v for k, v in timed.result.items() if not isinstance(v, list | dict)},
    }


def _rival_detail(c: Comparison, tool: Rival, done: Any) -> dict[str, Any]:
    return {"cpu_seconds": round(done.cpu_seconds, 2)}
